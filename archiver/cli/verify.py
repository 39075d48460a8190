"""``archiver verify``: re-hash every blob and cross-check the catalog."""

from __future__ import annotations

import sys

import click

from archiver.archive import Archive
from archiver.cli import emit_json, human_bytes, register
from archiver.verify import verify_archive


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def verify(ctx: click.Context, as_json: bool) -> None:
    """Check every blob against its hash and the catalog against the blobs; non-zero exit on any problem."""
    config = ctx.obj.config
    with Archive.for_reading(config.archive) as archive:
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


register(verify)
