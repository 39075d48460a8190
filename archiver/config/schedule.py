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
        # APScheduler is imported here, not at the top: loading a config (every command) must not pay for it.
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

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
        if not plainly_valid(converted):  # anything else: APScheduler, which runs the schedule, decides
            from apscheduler.triggers.cron import CronTrigger

            minute, hour, day, month, dow = converted
            CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=dow)
    except ValueError as exc:
        raise ValueError(f"invalid crontab line {text!r}: {exc}") from None
    return Schedule(cleaned, "cron", cron_fields=converted)


#: The numeric fields of a crontab line: (lowest, highest) value.
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12))
_NUMERIC_PART = re.compile(r"(?:\*|(\d+)(?:-(\d+))?)(?:/(\d+))?")
_WEEKDAY_PART = re.compile(r"\*(?:/(\d+))?|([a-z]{3})(?:-([a-z]{3}))?")


def plainly_valid(fields: tuple[str, ...]) -> bool:
    """True when the five fields (weekdays as names) are in the plain cron grammar and in range.

    Every command loads the config, and importing APScheduler to check a schedule cost as much
    as a whole search.  This proves the usual forms valid without it (``*``, ``*/N``, ``A``,
    ``A-B``, ``A-B/N``, ``A/N``, lists, weekday names and ranges) and is never more lenient than
    APScheduler (the tests compare the two); False means "ask APScheduler", not "invalid".
    """
    for (low, high), field in zip(_RANGES, fields[:4], strict=True):
        for part in field.split(","):
            match = _NUMERIC_PART.fullmatch(part)
            if match is None:
                return False
            first, last, step = (None if g is None else int(g) for g in match.groups())
            start = low if first is None else first
            end = high if last is None or first is None else last
            if not low <= start <= end <= high or (step is not None and not 1 <= step <= end - start):
                return False
    for part in fields[4].split(","):
        match = _WEEKDAY_PART.fullmatch(part)
        if match is None:
            return False
        step, first, last = match.groups()
        if step is not None and not 1 <= int(step) <= 6:
            return False
        if first is not None and (first not in _WEEKDAYS or (last is not None and last not in _WEEKDAYS)):
            return False
        if first is not None and last is not None and _APS_WEEKDAYS.index(first) > _APS_WEEKDAYS.index(last):
            return False
    return True


_APS_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # APScheduler's order: a range runs Monday on


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
