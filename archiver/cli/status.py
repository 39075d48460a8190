"""``archiver status``: what the archive holds, per account and folder, and how the last runs went."""

from __future__ import annotations

import click

from archiver.archive import Archive
from archiver.cli import emit_json, human_bytes, register
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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--folders/--no-folders", default=True, help="List folders under each account.")
@click.pass_context
def status(ctx: click.Context, as_json: bool, folders: bool) -> None:
    """Show messages and bytes per account and folder, the last run and the last error.

    Also how many messages the search index holds only in part (a hostile or broken message:
    its folders are searchable, not all its text); ``--json`` lists the latest with the reasons.
    """
    config = ctx.obj.config
    with Archive.for_reading(config.archive) as archive:
        data = collect_status(archive, [a.name for a in config.accounts])
        for entry in data:  # last_success, stale_after_seconds, stale: see archiver.daemon.schedule.freshness
            entry.update(freshness(archive.catalog, config, entry["account"]))
        totals = archive.catalog.archive_totals()
        partly_indexed = archive.catalog.index_problem_count()
        partly_latest = archive.catalog.index_problems() if as_json else []
    if as_json:
        emit_json(
            {
                "archive": str(config.archive.path),
                "blobs": totals["blobs"],
                "raw_bytes": totals["raw_bytes"],
                "stored_bytes": totals["stored_bytes"],
                "accounts": data,
                "index_partly_indexed": partly_indexed,
                "index_problems": partly_latest,
            }
        )
        return
    click.echo(
        f"archive {config.archive.path}: {totals['blobs']} unique message(s), "
        f"{human_bytes(totals['raw_bytes'])} raw, {human_bytes(totals['stored_bytes'])} on disk"
    )
    if partly_indexed:
        click.echo(f"search index: {partly_indexed} message(s) only partly indexed (reasons: status --json)")
    for entry in data:
        run = entry["last_run"]
        last = "never backed up" if run is None else f"last run {run['started_at'][:19]} {run['status']}"
        click.echo(f"{entry['account']}: {entry['messages']} message(s), {human_bytes(entry['bytes'])}; {last}")
        if entry["stale"]:
            since = f"since {entry['last_success'][:19]}" if entry["last_success"] else "ever"
            click.echo(f"  STALE: no successful backup {since} (threshold {entry['stale_after_seconds'] / 3600:g} h)")
        for err in entry.get("errors", [])[:10]:
            where = f" [{err['folder']}]" if err["folder"] else ""
            click.echo(f"  error {err['at'][:19]}{where}: {err['message']}")
        if folders:
            for folder in entry["folders"]:
                gone = f"  (gone since {folder['gone_since'][:10]})" if folder["gone_since"] else ""
                click.echo(f"  {folder['name']}: {folder['messages']} message(s), {human_bytes(folder['bytes'])}{gone}")


register(status)
