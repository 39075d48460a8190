"""The reader's time zone and date style: dates shown in their zone and their locale's order.

The app's pages run no script, so the browser cannot tell us its zone: the user
picks one on ``/prefs`` (kept in the session cookie); until then dates are shown
in the server's zone, named next to each date.  The date style follows the
browser's preferred language (``Accept-Language``): month-first with a 12-hour
clock for US English, ``YYYY-MM-DD HH:MM`` (unambiguous everywhere) otherwise.
Full locale formatting (month names in every language) would need Babel; this
keeps the dependency list short.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, tzinfo
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for

from web.auth import login_required

bp = Blueprint("prefs", __name__)
_US_STYLE = ("en-us", "en")


@cache
def zone_names() -> tuple[str, ...]:
    return tuple(sorted(z for z in available_timezones() if "/" in z or z == "UTC"))


def user_zone() -> tzinfo:
    name = session.get("tz")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return datetime.now().astimezone().tzinfo or UTC


def zone_name() -> str:
    """The zone dates are shown in, for the header ("UTC (server)" until the user picks one)."""
    return session.get("tz") or f"{datetime.now().astimezone().tzname()} (server)"


def _us_style() -> bool:
    best = request.accept_languages.best if request else None
    return bool(best) and best.lower() in _US_STYLE


def local_time(value: str | None) -> str:
    """An ISO 8601 instant as the reader's wall-clock time, e.g. "2024-05-01 14:03 CEST" ("—" when unknown)."""
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value[:40]
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(user_zone())
    zone = moment.tzname() or ""
    if _us_style():
        hour = moment.strftime("%I").lstrip("0")
        return f"{moment:%b} {moment.day}, {moment.year}, {hour}:{moment:%M %p} {zone}".rstrip()
    return f"{moment:%Y-%m-%d %H:%M} {zone}".rstrip()


def end_of_day(day: date) -> datetime:
    """The last instant of ``day`` in the reader's zone: "as of 2024-05-31" means after that day."""
    return datetime.combine(day, time(23, 59, 59, 999999), tzinfo=user_zone())


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        abort(400, "the date must look like 2024-05-31")


@bp.route("/prefs", methods=["GET", "POST"])
@login_required
def prefs() -> Any:
    if request.method == "POST":
        name = request.form.get("tz", "")
        if name and name not in zone_names():
            abort(400, "unknown time zone: pick one from the list")
        if name:
            session["tz"] = name
        else:
            session.pop("tz", None)
        flash(f"Dates are now shown in {name or 'the server time zone'}.")
        return redirect(url_for("prefs.prefs"))
    return render_template("prefs.html", zones=zone_names(), current=session.get("tz", ""))
