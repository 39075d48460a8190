"""``archiver backup``: back up every (or the named) account once."""

from __future__ import annotations

import sys
import time

import click

from archiver.archive import Archive
from archiver.backup import IndexOutcome, run_backup, snapshot_after_run, update_search_index
from archiver.backup.background import start_worker, wait_for_worker
from archiver.cli._common import accounts_option, emit_json, human_bytes, json_option, with_archive
from archiver.config import AccountConfig, Config
from archiver.index.hint import bookmark
from archiver.progress import index_progress_for_terminal, progress_for_terminal

#: The index keys every ``--json`` report holds, whichever way the index was (or was not) updated.
_NO_INDEX_KEYS: dict[str, object] = {
    "index_seconds": None,  # --wait-index: how long the update took here
    "index_error": None,  # --wait-index: the update's failure, one line
    "index_partly_indexed": None,  # --wait-index: messages indexed only in part
    "index_worker_pid": None,  # background: the worker started (None: nothing to index)
    "index_pending": None,  # background: messages it has to index
}


def _selected(ctx: click.Context, accounts: tuple[str, ...], **_: object) -> list[AccountConfig]:
    """The accounts to back up: the named ones (an unknown name is an error), else all."""
    config = ctx.obj.config
    return [config.account(name) for name in accounts] if accounts else list(config.accounts)


@click.command()
@accounts_option
@json_option("Print the run reports as JSON.")
@click.option("--no-index", is_flag=True, help="Leave the search index for the next run or `archiver reindex`.")
@click.option(
    "--wait-index/--background-index",
    default=None,
    help="Return once the new mail is searchable (the index updated here, with its progress), or once it is "
    "durable, a background worker indexing it.  Default: [index] update (background).",
)
@click.pass_context
@with_archive("write", check=_selected)
def backup(
    ctx: click.Context,
    archive: Archive,
    accounts: tuple[str, ...],
    as_json: bool,
    no_index: bool,
    wait_index: bool | None,
) -> None:
    """Fetch new mail from the servers into the archive, then have the search index updated.

    By default the command returns once the mail is durable and a background worker indexes it
    (`archiver status` says how far it is); with --wait-index it returns once the mail is searchable.
    Exits non-zero if any account or folder failed, or (--wait-index) the search index could not be
    updated, with one line per problem.
    """
    config = ctx.obj.config
    selected = _selected(ctx, accounts)
    reports = []
    for account in selected:
        progress, driver = progress_for_terminal()
        with driver:
            report = run_backup(config, account, progress=progress, archive=archive, index=False)
        reports.append(report)
        if not as_json:
            click.echo(_summary(report.as_dict()))
    indexed_run = next((r.run_id for r in reversed(reports) if r.run_id is not None), None)
    archive_failed = any(r.archive_failed for r in reports)  # the index would fail on the same disk
    wait = config.index.update == "wait" if wait_index is None else wait_index
    index_keys: dict[str, object] = {"index_update": "none", **_NO_INDEX_KEYS}
    problems = [line for report in reports for line in report.problems]
    if not no_index and indexed_run is not None and not archive_failed:
        if wait:
            index, seconds = _index_here(config, archive, indexed_run, as_json)
            if index.error is not None:
                problems.append(index.error)
            index_keys = {
                **_NO_INDEX_KEYS,
                "index_update": "wait",
                "index_seconds": round(seconds, 3),
                "index_error": index.error,
                "index_partly_indexed": index.problems,
            }
        else:
            index_keys = _index_in_background(config, archive, indexed_run, as_json)
    if reports and not archive_failed and (snapshot_problem := snapshot_after_run(archive)):
        problems.append(snapshot_problem)
    if as_json:
        emit_json([{**r.as_dict(), **index_keys} for r in reports])
    for line in problems:
        click.echo(f"archiver: problem: {line}", err=True)
    if problems or any(not r.ok for r in reports):
        sys.exit(1)


def _index_here(config: Config, archive: Archive, run_id: int, quiet: bool) -> tuple[IndexOutcome, float]:
    """--wait-index: wait for a background worker already at it (showing its progress), then index what is left."""
    started = time.monotonic()
    with index_progress_for_terminal(quiet=quiet) as indexing:  # for all accounts: one commit
        while True:
            wait_for_worker(archive.root, indexing)
            index = update_search_index(archive, run_id, config.index.memory_mb, progress=indexing)
            if not index.skipped:  # else another writer held the index for 30 s: follow it again
                break
    seconds = time.monotonic() - started
    if not quiet and index.error is None:
        partly = f"; {index.problems} message(s) only partly indexed" if index.problems else ""
        click.echo(f"search index updated in {seconds:.1f}s{partly}")
    return index, seconds


def _index_in_background(config: Config, archive: Archive, run_id: int, quiet: bool) -> dict[str, object]:
    """The default: leave the index update to a detached worker, saying so in one line."""
    pending = archive.catalog.index_backlog(bookmark(archive.root)).messages
    pid = start_worker(archive, config.source, run_id, config.index.memory_mb)
    if pid is not None and not quiet:
        click.echo(
            f"search index: {pending} new message(s) being indexed in the background (pid {pid}); "
            "`archiver status` shows how far it is"
        )
    return {
        **_NO_INDEX_KEYS,
        "index_update": "background",
        "index_worker_pid": pid,
        "index_pending": pending if pid else 0,
    }


def _summary(report: dict) -> str:
    """One line per account for a person: the same figures as ``--json``."""
    changed = [f for f in report["folders"] if not f["unchanged"]]
    return (
        f"{report['account']}: {report['status']}: {report['messages_new']} new message(s) "
        f"({human_bytes(report['bytes_fetched'])} fetched, {human_bytes(report['bytes_stored'])} stored), "
        f"{len(report['folders'])} folder(s), {len(changed)} changed, in {report['seconds']:.1f}s"
    )
