"""``archiver reindex``: rebuild the search index from the blobs and the catalog."""

from __future__ import annotations

import click

from archiver.archive import Archive
from archiver.cli._common import emit_json, human_bytes, json_option, with_archive
from archiver.index import index_status, reindex
from archiver.progress import index_progress_for_terminal


@click.command("reindex")
@click.option("--procs", type=click.IntRange(1, 64), default=None, help="Worker processes (default: up to 2 cores).")
@json_option()
@click.pass_context
@with_archive("write")
def reindex_command(ctx: click.Context, archive: Archive, procs: int | None, as_json: bool) -> None:
    """Rebuild the search index from scratch; searches keep working on the old one meanwhile."""
    with index_progress_for_terminal(quiet=as_json) as indexing:
        report = reindex(archive, progress=indexing, procs=procs)
    status = index_status(archive)
    rate = report.indexed / report.seconds if report.seconds else 0.0
    if as_json:
        emit_json({"indexed": report.indexed, "problems": report.problems, "seconds": round(report.seconds, 3),
                   "messages_per_second": round(rate, 1), "index": status})  # fmt: skip
        return
    click.echo(
        f"indexed {report.indexed} message(s) in {report.seconds:.1f}s ({rate:.0f}/s); "
        f"index {human_bytes(status.get('bytes', 0))}"
        + (f"; {report.problems} message(s) partly unreadable (see index_problems)" if report.problems else "")
    )
