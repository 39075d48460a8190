"""``archiver status``: what the archive holds, per account and folder, and how the last runs went."""

from __future__ import annotations

import click

from archiver.archive import Archive
from archiver.cli._common import emit_json, human_bytes, json_option, with_archive
from archiver.daemon.status import account_status
from archiver.index.lag import index_lag


@click.command()
@json_option()
@click.option("--folders/--no-folders", default=True, help="List folders under each account.")
@click.pass_context
@with_archive("inspect")
def status(ctx: click.Context, archive: Archive, as_json: bool, folders: bool) -> None:
    """Show messages and bytes per account and folder, the last run and the last error.

    Also how far the search index lags (messages not searchable yet, since when, whether a worker is
    indexing them and how far it is, the last index failure), and how many messages it holds only in
    part (a hostile or broken message: its folders are searchable, not all its text); ``--json`` lists
    the latest with the reasons.
    """
    config = ctx.obj.config
    data = account_status(archive, config)
    totals = archive.catalog.archive_totals()
    partly_indexed = archive.catalog.index_problem_count()
    partly_latest = archive.catalog.index_problems() if as_json else []
    lag = index_lag(archive.root, archive.catalog)
    if as_json:
        emit_json(
            {
                "archive": str(config.archive.path),
                "encryption_key_id": archive.encryption_key_id,
                "blobs": totals["blobs"],
                "raw_bytes": totals["raw_bytes"],
                "stored_bytes": totals["stored_bytes"],
                "accounts": data,
                "index_lag": lag.as_dict(),
                "index_partly_indexed": partly_indexed,
                "index_problems": partly_latest,
            }
        )
        return
    sealed = f" (encrypted, key {archive.encryption_key_id})" if archive.encryption_key_id else ""
    click.echo(
        f"archive {config.archive.path}{sealed}: {totals['blobs']} unique message(s), "
        f"{human_bytes(totals['raw_bytes'])} raw, {human_bytes(totals['stored_bytes'])} on disk"
    )
    click.echo(f"search index: {lag.summary()}")
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
