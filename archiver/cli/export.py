"""``archiver export``: write archived mail as mbox, Maildir or .eml files."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from archiver.archive import Archive
from archiver.cli._common import emit_json, human_bytes, json_option, scope_options, with_archive
from archiver.files.export import FORMATS, export
from archiver.scope import Scope


@click.command(name="export")
@scope_options
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="mbox", show_default=True)
@click.option("--output", "-o", "output", required=True, metavar="DIR", help="A new or empty directory.")
@json_option("Print the report as JSON.")
@click.pass_context
@with_archive("read")
def export_command(
    ctx: click.Context,
    archive: Archive,
    account: str | None,
    folders: tuple[str, ...],
    messages: tuple[str, ...],
    as_of: str | None,
    run_id: int | None,
    fmt: str,
    output: str,
    as_json: bool,
) -> None:
    """Export messages, folders (as of a date or run) or a whole account to files.

    mbox is mboxrd, one file per folder; maildir is Maildir++ with flags in the file names; eml is a
    tree of .eml files with names safe on every filesystem. MANIFEST.tsv records flags and dates.
    """
    scope = Scope(account, tuple(folders), tuple(messages), as_of, run_id)
    report = export(archive, scope, fmt, Path(output))
    if as_json:
        emit_json({**vars(report), "folders": [vars(f) for f in report.folders], "ok": report.ok})
    else:
        for f in report.folders:
            click.echo(f"{f.folder} -> {f.path}: {f.messages} message(s), {human_bytes(f.bytes)}")
        click.echo(f"exported {report.messages} message(s) as {fmt} into {output} in {report.seconds:.1f}s")
    for line in report.failures:
        click.echo(f"archiver: problem: {line}", err=True)
    if not report.ok:
        sys.exit(1)
