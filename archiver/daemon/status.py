"""How an account's backups are going: what it holds, one scheduled run's outcome, whether it is stale.

Shared by the scheduler, the alerts, the metrics and ``archiver status`` (and its ``--json``); the
schedule syntax is :mod:`archiver.config.schedule`, the persisted scheduler
state :mod:`archiver.catalog.schedule_state`.
"""

from __future__ import annotations

from dataclasses import dataclass

from archiver.archive import Archive
from archiver.catalog import Catalog
from archiver.catalog.schedule_state import last_success_at
from archiver.config import Config
from archiver.config.schedule import parse_schedule, stale_after
from archiver.times import utc_now


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


def stale_limit(config: Config, account: str) -> float:
    """Seconds without a successful run after which the account counts as stale (its schedule, or the default)."""
    schedule = parse_schedule(config.account(account).schedule or config.scheduler.default_schedule)
    return stale_after(schedule if schedule.kind != "off" else None, config.scheduler.stale_after)


def freshness(catalog: Catalog, config: Config, account: str) -> dict:
    """``last_success``, ``stale_after_seconds`` and ``stale`` for ``archiver status`` (and its ``--json``)."""
    limit = stale_limit(config, account)
    last = last_success_at(catalog, account)
    stale = last is None or (utc_now() - last).total_seconds() > limit
    return {"last_success": last.isoformat() if last else None, "stale_after_seconds": int(limit), "stale": stale}


def collect_status(archive: Archive, account_names: list[str]) -> list[dict]:
    catalog = archive.catalog
    result = []
    for name in account_names:
        account_id = catalog.account_id(name)
        entry: dict = {"account": name, "messages": 0, "bytes": 0, "last_run": None, "last_error": None, "folders": []}
        if account_id is not None:
            totals = catalog.account_totals(account_id)
            entry["messages"], entry["bytes"] = totals["messages"], totals["bytes"]
            runs = catalog.last_runs(account_id, 1)
            if runs:
                entry["last_run"] = dict(runs[0])
                # Errors of the last run only: an old, since-fixed failure is history, not status.
                errors = catalog.run_errors(runs[0]["id"])
                entry["errors"] = [{"at": e["at"], "folder": e["folder"], "message": e["message"]} for e in errors]
                if errors:
                    entry["last_error"] = entry["errors"][-1]
            entry["folders"] = [dict(row) for row in catalog.folder_report(account_id)]
        result.append(entry)
    return result


def account_status(archive: Archive, config: Config) -> list[dict]:
    """:func:`collect_status` of every configured account, with ``last_success``, ``stale_after_seconds``, ``stale``."""
    data = collect_status(archive, [a.name for a in config.accounts])
    for entry in data:
        entry.update(freshness(archive.catalog, config, entry["account"]))
    return data
