"""``archiver verify``: re-hash every blob and cross-check the catalog."""

from __future__ import annotations

import sys

import click

from archiver.archive import Archive
from archiver.cli._common import emit_json, human_bytes, json_option, with_archive
from archiver.verify import verify_archive


@click.command()
@json_option()
@click.pass_context
@with_archive("inspect")
def verify(ctx: click.Context, archive: Archive, as_json: bool) -> None:
    """Check every blob against its hash and the catalog against the blobs; non-zero exit on any problem."""
    report = verify_archive(archive)
    if as_json:
        emit_json(report.as_dict())
    else:
        click.echo(
            f"checked {report.blobs_checked} blob(s), {human_bytes(report.bytes_checked)}: "
            f"{'OK' if report.ok else f'{len(report.problems)} problem(s)'}"
        )
        if report.orphans:
            click.echo(f"{len(report.orphans)} orphan blob(s) from interrupted runs (harmless)")
        for problem in report.problems:
            click.echo(f"problem: {problem}", err=True)
    if not report.ok:
        sys.exit(1)
