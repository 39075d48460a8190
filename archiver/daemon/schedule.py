"""When an account is due: schedule strings, durations, persisted scheduler state, freshness.

Kept apart from :mod:`archiver.daemon.scheduler` (the APScheduler daemon) so that
config validation, ``archiver status`` and the metrics can use it without
starting anything.

Schedule strings, as written in ``config.toml``:

* a 5-field crontab line, ``"0 */4 * * *"`` (minute hour day month weekday,
  weekday 0 or 7 = Sunday as in cron; evaluated in the machine's local time);
* ``"@hourly"``, ``"@daily"``, ``"@weekly"`` (also without the ``@``);
* an interval, ``"every 30m"``, ``"every 2h"``, ``"every 1h30m"``, ``"every 1d"``,
  ``"every 45s"`` (units s, m, h, d, w);
* ``"off"``: never scheduled (back it up by hand or from the web UI).

The scheduler's memory (next run per account, last start/finish, whether a
failure alert is outstanding) lives in the catalog table ``schedule_state``
(migration 4), so a restarted daemon knows what it missed.
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

    from archiver.catalog import Catalog
    from archiver.config import Config

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


# -- persisted state (catalog table schedule_state, migration 4) ---------------------------------


@dataclass(frozen=True)
class ScheduleState:
    """What the scheduler remembers about one account across restarts."""

    account: str
    schedule: str | None
    next_run_at: datetime | None
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_status: str | None
    last_run_id: int | None
    failing: bool


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def load_states(catalog: Catalog) -> dict[str, ScheduleState]:
    rows = catalog.db.execute("SELECT * FROM schedule_state").fetchall()
    return {
        row["account"]: ScheduleState(
            account=row["account"],
            schedule=row["schedule"],
            next_run_at=_when(row["next_run_at"]),
            last_started_at=_when(row["last_started_at"]),
            last_finished_at=_when(row["last_finished_at"]),
            last_status=row["last_status"],
            last_run_id=row["last_run_id"],
            failing=bool(row["failing"]),
        )
        for row in rows
    }


def save_next_run(catalog: Catalog, account: str, schedule: str, next_run_at: datetime | None) -> None:
    """Remember the account's schedule and next run time (upsert)."""
    with catalog.transaction():
        catalog.db.execute(
            "INSERT INTO schedule_state (account, schedule, next_run_at, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (account) DO UPDATE SET schedule = excluded.schedule, next_run_at = excluded.next_run_at, "
            "updated_at = excluded.updated_at",
            (account, schedule, _iso(next_run_at), utc_now().isoformat()),
        )


def save_started(catalog: Catalog, account: str) -> None:
    with catalog.transaction():
        catalog.db.execute(
            "INSERT INTO schedule_state (account, last_started_at, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (account) DO UPDATE SET last_started_at = excluded.last_started_at, "
            "updated_at = excluded.updated_at",
            (account, utc_now().isoformat(), utc_now().isoformat()),
        )


def save_finished(catalog: Catalog, account: str, status: str, run_id: int | None, failing: bool) -> None:
    with catalog.transaction():
        catalog.db.execute(
            "INSERT INTO schedule_state (account, last_finished_at, last_status, last_run_id, failing, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET "
            "last_finished_at = excluded.last_finished_at, last_status = excluded.last_status, "
            "last_run_id = excluded.last_run_id, failing = excluded.failing, updated_at = excluded.updated_at",
            (account, utc_now().isoformat(), status, run_id, int(failing), utc_now().isoformat()),
        )


def mark_interrupted(catalog: Catalog, account: str) -> None:
    """Close the account's ``running`` run as ``interrupted`` (a stopped child; the next run would do it anyway)."""
    with catalog.transaction():
        catalog.db.execute(
            "UPDATE runs SET status = 'interrupted', ended_at = COALESCE(ended_at, ?) WHERE status = 'running' "
            "AND account_id = (SELECT id FROM accounts WHERE name = ?)",
            (utc_now().isoformat(), account),
        )


def mark_timed_out(catalog: Catalog, account: str, message: str) -> None:
    """Close the account's latest run (``running``, or ``interrupted`` by the SIGTERM) as ``failed``, saying why."""
    row = catalog.db.execute(
        "SELECT r.id FROM runs r JOIN accounts a ON a.id = r.account_id WHERE a.name = ? "
        "AND r.status IN ('running', 'interrupted') ORDER BY r.id DESC LIMIT 1",
        (account,),
    ).fetchone()
    if row is None:
        return
    catalog.record_error(row[0], None, message)
    with catalog.transaction():
        catalog.db.execute(
            "UPDATE runs SET status = 'failed', ended_at = COALESCE(ended_at, ?) WHERE id = ?",
            (utc_now().isoformat(), row[0]),
        )


def last_success_at(catalog: Catalog, account: str) -> datetime | None:
    """End time of the account's latest run with status ``ok``."""
    row = catalog.db.execute(
        "SELECT MAX(r.ended_at) FROM runs r JOIN accounts a ON a.id = r.account_id "
        "WHERE a.name = ? AND r.status = 'ok'",
        (account,),
    ).fetchone()
    return _when(row[0]) if row else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class RunOutcome:
    """What one scheduled run came to, as the scheduler, the alerts and the logs see it.

    ``status`` is a run status (``ok``, ``partial``, ``failed``), ``skipped``
    (another backup of the account held the lock) or ``interrupted`` (the
    daemon stopped it).
    """

    account: str
    status: str
    run_id: int | None = None
    problems: tuple[str, ...] = ()
    messages_new: int = 0
    bytes_fetched: int = 0
    bytes_stored: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status in ("partial", "failed")


def freshness(catalog: Catalog, config: Config, account: str) -> dict:
    """``last_success``, ``stale_after_seconds`` and ``stale`` for ``archiver status`` (and its ``--json``)."""
    text = config.account(account).schedule or config.scheduler.default_schedule
    schedule = parse_schedule(text)
    limit = stale_after(schedule if schedule.kind != "off" else None, config.scheduler.stale_after)
    last = last_success_at(catalog, account)
    stale = last is None or (utc_now() - last).total_seconds() > limit
    return {"last_success": last.isoformat() if last else None, "stale_after_seconds": int(limit), "stale": stale}
