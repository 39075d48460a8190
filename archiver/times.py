"""Time as archiver reads and writes it: one clock, one text form per use, one reading of ``--as-of``.

Two text forms, because they serve two readers:

* the catalog's run clock (:func:`utc_iso`): UTC with microseconds always written, so comparing the
  text compares the instants (``runs.started_at`` is compared with an ``--as-of`` moment in SQL);
* what people and JSON consumers read (:func:`now_iso`, :func:`epoch_iso`): UTC to the second.

A leaf: it imports nothing of archiver but the error hierarchy, so every layer may use it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, tzinfo

from archiver.errors import RestoreError

_LAST_MICROSECOND = time(23, 59, 59, 999999)


def utc_now() -> datetime:
    """Aware UTC now; one place so tests and the catalog agree on the clock."""
    return datetime.now(UTC)


def utc_iso(moment: datetime) -> str:
    """An aware instant as the run clock's text: UTC, microseconds always written (text order is time order)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def now_iso() -> str:
    """Now, UTC, to the second: for times people read (alerts, jobs)."""
    return utc_now().isoformat(timespec="seconds")


def format_duration(seconds: float) -> str:
    """7200 → "2h", 5400 → "1h30m", 45 → "45s" (the config's own spelling)."""
    total = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def epoch_iso(seconds: float) -> str:
    """A Unix time as :func:`now_iso` writes it."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def end_of_day(day: date, zone: tzinfo | None = None) -> datetime:
    """The last instant of ``day`` in ``zone`` (None: the machine's local time): "as of a day" means after it."""
    if zone is None:
        return datetime.combine(day, _LAST_MICROSECOND).astimezone()
    return datetime.combine(day, _LAST_MICROSECOND, tzinfo=zone)


def as_of_timestamp(text: str, now: datetime | None = None) -> str:
    """The run-clock text (:func:`utc_iso`) of a user's ``--as-of``: a date or a date-time, ISO 8601.

    A bare date means the end of that day; a time without an offset is local time.  A moment in
    the future is refused: no run can have happened by then, and it is always a typo.
    """
    text = text.strip()
    try:
        if len(text) == 10:
            moment = end_of_day(date.fromisoformat(text))
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.astimezone()
    except ValueError:
        raise RestoreError(
            f"--as-of: expected a date (2026-11-20) or date-time (2026-11-20T14:30), got {text!r}"
        ) from None
    if moment > (now or utc_now()):
        raise RestoreError(f"--as-of {text} is in the future")
    return utc_iso(moment)
