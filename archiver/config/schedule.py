"""Schedule strings and durations as written in ``config.toml``: their syntax, and what they imply.

Config validation reads them here; the daemon (:mod:`archiver.daemon.scheduler`)
turns them into APScheduler triggers, and ``archiver status`` and the metrics ask
:func:`stale_after`, all without starting anything.

Schedule strings, as written in ``config.toml``:

* a 5-field crontab line, ``"0 */4 * * *"`` (minute hour day month weekday,
  weekday 0 or 7 = Sunday as in cron; evaluated in the machine's local time);
* ``"@hourly"``, ``"@daily"``, ``"@weekly"`` (also without the ``@``);
* an interval, ``"every 30m"``, ``"every 2h"``, ``"every 1h30m"``, ``"every 1d"``,
  ``"every 45s"`` (units s, m, h, d, w);
* ``"off"``: never scheduled (back it up by hand or from the web UI).

The scheduler's memory across restarts is the catalog's
(:mod:`archiver.catalog.schedule_state`); freshness, from both, is
:mod:`archiver.daemon.status`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from archiver.times import utc_now

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(?:\d+\s*[smhdw]\s*)+")
_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_ALIASES = {
    **{
        alias: cron
        for name, cron in (("hourly", "0 * * * *"), ("daily", "0 0 * * *"), ("weekly", "0 0 * * 0"))
        for alias in (name, "@" + name)
    },
    "@midnight": "0 0 * * *",
}
DEFAULT_STALE_SECONDS = 48 * 3600
SCHEDULE_HELP = 'a crontab line like "0 */4 * * *", "@daily", an interval like "every 30m" or "every 2h", or "off"'


def parse_duration(text: str) -> int:
    """``"90s"``, ``"30m"``, ``"1h30m"``, ``"2d"`` → seconds; ``ValueError`` saying what is expected."""
    cleaned = text.strip().lower()
    if not _DURATION.fullmatch(cleaned):
        raise ValueError(f'expected a duration like "30s", "15m", "2h", "1h30m" or "1d", got {text!r}')
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(cleaned))
    if seconds <= 0:
        raise ValueError(f"expected a duration greater than zero, got {text!r}")
    return seconds


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule string: ``kind`` is ``"cron"``, ``"interval"`` or ``"off"``."""

    text: str
    kind: str
    interval: int | None = None  # seconds, for "interval"
    cron_fields: tuple[str, ...] = ()  # minute hour day month day_of_week (APScheduler spelling)

    def trigger(self, jitter: int = 0, start: datetime | None = None) -> BaseTrigger:
        """An APScheduler trigger; ``jitter`` adds 0..jitter seconds to every fire time.

        ``start`` anchors an interval (the persisted next run), so a restart
        keeps the cadence instead of restarting the clock.
        """
        if self.kind == "interval":
            return IntervalTrigger(seconds=self.interval or 0, start_date=start, jitter=jitter or None)
        if self.kind == "cron":
            minute, hour, day, month, dow = self.cron_fields
            return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=dow, jitter=jitter or None)
        raise ValueError("an 'off' schedule has no trigger")

    def typical_interval(self, now: datetime | None = None) -> float | None:
        """Seconds between two runs (for cron: between the next two fire times); None when off."""
        if self.kind == "interval":
            return float(self.interval or 0)
        if self.kind != "cron":
            return None
        now = now or utc_now()
        trigger = self.trigger()
        first = trigger.get_next_fire_time(None, now)
        second = trigger.get_next_fire_time(first, first + timedelta(seconds=1)) if first else None
        return (second - first).total_seconds() if first and second else None


def parse_schedule(text: str) -> Schedule:
    """Parse a schedule string (see the module docstring); ``ValueError`` with a message a user can act on."""
    cleaned = " ".join(text.strip().split())
    lowered = cleaned.lower()
    if lowered in ("off", "never", "manual"):
        return Schedule(cleaned, "off")
    if lowered.startswith("every "):
        try:
            return Schedule(cleaned, "interval", interval=parse_duration(lowered[6:]))
        except ValueError:
            raise ValueError(
                f'invalid interval {text!r}: expected "every" and a duration like "30m", "2h", "1h30m" or "1d"'
            ) from None
    expr = _ALIASES.get(lowered, cleaned)
    fields = expr.split(" ")
    if len(fields) != 5:
        raise ValueError(f"expected {SCHEDULE_HELP}, got {text!r}")
    try:
        converted = (*fields[:4], _cron_weekdays(fields[4]))
        minute, hour, day, month, dow = converted
        CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=dow)
    except ValueError as exc:
        raise ValueError(f"invalid crontab line {text!r}: {exc}") from None
    return Schedule(cleaned, "cron", cron_fields=converted)


def _cron_weekdays(field: str) -> str:
    """Cron numbers weekdays from Sunday = 0 (or 7); APScheduler from Monday = 0: use names, which both read alike."""

    def name(token: str) -> str:
        if not token.isdigit():
            return token
        number = int(token)
        if number > 7:
            raise ValueError(f"weekday {number} is out of range 0-7")
        return _WEEKDAYS[number % 7]

    parts = []
    for part in field.split(","):
        head, slash, step = part.partition("/")
        parts.append("-".join(name(t) for t in head.split("-")) + slash + step)
    return ",".join(parts)


def stale_after(schedule: Schedule | None, configured: int | None) -> float:
    """After how many seconds without a successful run an account is flagged stale.

    The configured ``[scheduler] stale_after`` wins; else twice the schedule's
    interval; else (no schedule) 48 hours.
    """
    if configured:
        return float(configured)
    interval = schedule.typical_interval() if schedule else None
    return 2 * interval if interval else float(DEFAULT_STALE_SECONDS)
