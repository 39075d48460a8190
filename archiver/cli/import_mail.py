"""``archiver import``: bring mbox files, Maildirs or .eml trees into a local account."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from archiver.archive import Archive
from archiver.cli import emit_json, human_bytes, register
from archiver.files.importer import FORMATS, import_path


@click.command(name="import")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--account", required=True, metavar="NAME", help='An account with protocol = "local".')
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Default: detected from the source.")
@click.option("--folder", metavar="NAME", help="Parent folder for the imported folders (a single file: its folder).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def import_command(
    ctx: click.Context, source: Path, account: str, fmt: str | None, folder: str | None, as_json: bool
) -> None:
    """Import SOURCE (an mbox file or tree, a Maildir, .eml files) into the archive, deduplicated.

    Importing the same source again adds nothing. Flags and dates come from an archiver export's
    MANIFEST.tsv when present, else from Maildir names, mbox From lines/Status headers, file times.
    """
    config = ctx.obj.config
    with Archive(config.archive) as archive:
        report = import_path(archive, config.account(account), source, fmt=fmt, folder=folder)
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


register(import_command)
