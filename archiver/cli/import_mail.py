"""``archiver import``: bring mbox files, Maildirs or .eml trees into a local account."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from archiver.archive import Archive
from archiver.cli._common import account_option, emit_json, human_bytes, json_option, with_archive
from archiver.files.importer import FORMATS, import_path


@click.command(name="import")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@account_option('An account with protocol = "local".', required=True)
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Default: detected from the source.")
@click.option("--folder", metavar="NAME", help="Parent folder for the imported folders (a single file: its folder).")
@json_option("Print the report as JSON.")
@click.pass_context
@with_archive("write")
def import_command(
    ctx: click.Context,
    archive: Archive,
    source: Path,
    account: str,
    fmt: str | None,
    folder: str | None,
    as_json: bool,
) -> None:
    """Import SOURCE (an mbox file or tree, a Maildir, .eml files) into the archive, deduplicated.

    Importing the same source again adds nothing. Flags and dates come from an archiver export's
    MANIFEST.tsv when present, else from Maildir names, mbox From lines/Status headers, file times.
    """
    report = import_path(archive, ctx.obj.config.account(account), source, fmt=fmt, folder=folder)
    if as_json:
        emit_json({**vars(report), "ok": report.ok})
    else:
        for name, count in sorted(report.folders.items()):
            click.echo(f"{name}: {count} message(s)")
        click.echo(
            f"{account}: {report.status}: {report.messages} message(s), {report.placements_new} new in the catalog, "
            f"{report.blobs_new} new blob(s), {human_bytes(report.bytes)} read in {report.seconds:.1f}s"
        )
    for line in report.problems:
        click.echo(f"archiver: problem: {line}", err=True)
    if not report.ok:
        sys.exit(1)
