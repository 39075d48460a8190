"""``archiver backup``: back up every (or the named) account once."""

from __future__ import annotations

import sys
import time

import click

from archiver.archive import Archive
from archiver.backup import IndexOutcome, run_backup, snapshot_after_run, update_search_index
from archiver.cli._common import accounts_option, emit_json, human_bytes, json_option, with_archive
from archiver.config import AccountConfig
from archiver.progress import index_progress_for_terminal, progress_for_terminal


def _selected(ctx: click.Context, accounts: tuple[str, ...], **_: object) -> list[AccountConfig]:
    """The accounts to back up: the named ones (an unknown name is an error), else all."""
    config = ctx.obj.config
    return [config.account(name) for name in accounts] if accounts else list(config.accounts)


@click.command()
@accounts_option
@json_option("Print the run reports as JSON.")
@click.option("--no-index", is_flag=True, help="Leave the search index for the next run or `archiver reindex`.")
@click.pass_context
@with_archive("write", check=_selected)
def backup(ctx: click.Context, archive: Archive, accounts: tuple[str, ...], as_json: bool, no_index: bool) -> None:
    """Fetch new mail from the servers into the archive, then update the search index.

    Exits non-zero if any account or folder failed, or the search index could not be updated,
    with one line per problem.
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
    index_seconds = None
    index = IndexOutcome()
    indexed_run = next((r.run_id for r in reversed(reports) if r.run_id is not None), None)
    archive_failed = any(r.archive_failed for r in reports)  # the index would fail on the same disk
    if not no_index and indexed_run is not None and not archive_failed:
        started = time.monotonic()
        with index_progress_for_terminal(quiet=as_json) as indexing:  # for all accounts: one commit
            index = update_search_index(archive, indexed_run, config.index.memory_mb, progress=indexing)
        index_seconds = time.monotonic() - started
        if not as_json and index.error is None:
            partly = f"; {index.problems} message(s) only partly indexed" if index.problems else ""
            click.echo(f"search index updated in {index_seconds:.1f}s{partly}")
    problems = [line for report in reports for line in report.problems]
    if index.error is not None:
        problems.append(index.error)
    if reports and not archive_failed and (snapshot_problem := snapshot_after_run(archive)):
        problems.append(snapshot_problem)
    if as_json:
        index_keys = {
            "index_seconds": None if index_seconds is None else round(index_seconds, 3),
            "index_error": index.error,
            "index_partly_indexed": index.problems,
        }
        emit_json([{**r.as_dict(), **index_keys} for r in reports])
    for line in problems:
        click.echo(f"archiver: problem: {line}", err=True)
    if problems or any(not r.ok for r in reports):
        sys.exit(1)


def _summary(report: dict) -> str:
    """One line per account for a person: the same figures as ``--json``."""
    changed = [f for f in report["folders"] if not f["unchanged"]]
    return (
        f"{report['account']}: {report['status']}: {report['messages_new']} new message(s) "
        f"({human_bytes(report['bytes_fetched'])} fetched, {human_bytes(report['bytes_stored'])} stored), "
        f"{len(report['folders'])} folder(s), {len(changed)} changed, in {report['seconds']:.1f}s"
    )
