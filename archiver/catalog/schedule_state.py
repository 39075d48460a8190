"""The scheduler's memory across restarts (``schedule_state``, migration 4), and closing its runs.

Per account: the schedule it was planned with, the next run, the last start and
finish, and whether a failure alert is outstanding (so recovery is announced
once).  A restarted daemon reads it to catch up a missed run once, not every
one it slept through.  Module functions taking the catalog, as the daemon calls them.
"""

from __future__ import annotations

from datetime import datetime

from archiver.catalog import Catalog, ScheduleState
from archiver.times import utc_now

SCHEMA = 4
"""The migration that made ``schedule_state``; a read-only open of an older catalog has no such table."""


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def load_states(catalog: Catalog) -> dict[str, ScheduleState]:
    """What the scheduler remembers, by account name (nothing for a catalog older than the table)."""
    if catalog.schema_version < SCHEMA:
        return {}
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
