"""``archiver restore``: put archived mail back on an IMAP server, exactly as it was."""

from __future__ import annotations

import sys

import click

from archiver.archive import Archive
from archiver.cli._common import emit_json, human_bytes, json_option, scope_options, with_archive
from archiver.config import AccountConfig
from archiver.progress import progress_for_terminal
from archiver.restore.execute import execute_restore
from archiver.restore.plan import RestoreReport, plan_restore
from archiver.scope import Scope


def _target(
    ctx: click.Context, account: str | None, target_name: str | None, in_place: bool, prefix: str | None, **_: object
) -> AccountConfig:
    """The account to restore into; checked before the archive opens (a wrong option changes nothing)."""
    if in_place and prefix is not None:
        raise click.UsageError("--in-place and --prefix exclude each other")
    target_name = target_name or account
    if target_name is None:
        raise click.UsageError("name the target account with --to (or the source with --account)")
    return ctx.obj.config.account(target_name)


def report_dict(report: RestoreReport) -> dict:
    return {
        "target": report.target,
        "dry_run": report.dry_run,
        "ok": report.ok,
        "appended": report.appended,
        "skipped": report.skipped,
        "failed": report.failed,
        "bytes": report.bytes,
        "seconds": round(report.seconds, 3),
        "problems": report.problems,
        "folders": [{**vars(f), "refused_flags": sorted(f.refused_flags)} for f in report.folders],
    }


@click.command()
@scope_options
@click.option("--to", "target_name", metavar="NAME", help="Target IMAP account (default: the source account).")
@click.option("--prefix", metavar="PATH", help="Parent folder for the restored tree (default Restored/<date>).")
@click.option("--in-place", is_flag=True, help="Write into the original folder names (no prefix).")
@click.option("--dry-run", is_flag=True, help="Show what would be appended or skipped; change nothing.")
@json_option("Print the report as JSON.")
@click.pass_context
@with_archive("write", check=_target)
def restore(
    ctx: click.Context,
    archive: Archive,
    account: str | None,
    folders: tuple[str, ...],
    messages: tuple[str, ...],
    as_of: str | None,
    run_id: int | None,
    target_name: str | None,
    prefix: str | None,
    in_place: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Restore messages, folders (as of a date or run) or a whole account into an IMAP account.

    Bytes, flags and INTERNALDATE are the originals; messages the target folder already holds are
    skipped, so running it again (e.g. after an interruption) never duplicates. Exits 1 if any
    message failed.
    """
    scope = Scope(account, tuple(folders), tuple(messages), as_of, run_id)
    target = _target(ctx, account=account, target_name=target_name, in_place=in_place, prefix=prefix)
    plan = plan_restore(archive.catalog, scope, prefix=prefix, in_place=in_place)
    if not plan.folders:
        click.echo("nothing to restore: the scope selects no messages", err=True)
        return
    progress, driver = progress_for_terminal()
    with driver:
        report = execute_restore(archive, plan, target, dry_run=dry_run, progress=progress)
    if as_json:
        emit_json(report_dict(report))
    else:
        verb = "would append" if dry_run else "appended"
        for f in report.folders:
            created = " (new folder)" if f.created else ""
            click.echo(
                f"{f.source} -> {f.target}{created}: {verb} {f.appended}, skipped {f.skipped}, "
                f"failed {f.failed}, {human_bytes(f.bytes)}"
            )
            if f.refused_flags:
                click.echo(f"  flags the target refused: {' '.join(sorted(f.refused_flags))}")
        click.echo(
            f"{target.name}: {verb} {report.appended}, skipped {report.skipped}, failed {report.failed}, "
            f"{human_bytes(report.bytes)} in {report.seconds:.1f}s"
        )
    for line in report.problems + [x for f in report.folders for x in (f"{f.target}: {r}" for r in f.failures)]:
        click.echo(f"archiver: problem: {line}", err=True)
    if not report.ok:
        sys.exit(1)
