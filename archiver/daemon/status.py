"""What the archive holds per account and how its last runs went: ``archiver status`` and its ``--json``.

Kept beside the scheduler because staleness is measured against each account's
schedule (:func:`archiver.daemon.schedule.freshness`, the same rule ``/metrics``
applies).
"""

from __future__ import annotations

from archiver.archive import Archive
from archiver.config import Config
from archiver.daemon.schedule import freshness


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
