"""``archiver reindex``: rebuild the search index from the blobs and the catalog."""

from __future__ import annotations

import sys

import click

from archiver.archive import Archive
from archiver.cli import emit_json, human_bytes, register
from archiver.index import index_status, reindex


def _bar():  # a rich progress bar on a terminal; None in pipes and the journal
    if not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("indexing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True)


@click.command("reindex")
@click.option("--procs", type=click.IntRange(1, 64), default=None, help="Worker processes (default: up to 2 cores).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def reindex_command(ctx: click.Context, procs: int | None, as_json: bool) -> None:
    """Rebuild the search index from scratch; searches keep working on the old one meanwhile."""
    config = ctx.obj.config
    with Archive(config.archive) as archive:
        bar = _bar()
        if bar is not None:
            task = bar.add_task("indexing", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            with bar:
                report = reindex(archive, progress=progress, procs=procs)
        else:
            report = reindex(archive, procs=procs)
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


register(reindex_command)
