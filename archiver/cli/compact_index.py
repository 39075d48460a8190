"""``archiver compact-index``: merge the search index's segments now, bounded in memory and time."""

from __future__ import annotations

import click

from archiver.archive import Archive
from archiver.cli._common import emit_json, json_option, with_archive
from archiver.index import compact


@click.command("compact-index")
@click.option("--full", is_flag=True, help="Merge every segment into one (slow on a big index).")
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop between merge steps once this many seconds are spent (default: until done).",
)
@json_option()
@click.pass_context
@with_archive("write")
def compact_index_command(
    ctx: click.Context, archive: Archive, full: bool, max_seconds: float | None, as_json: bool
) -> None:
    """Merge the search index's segments by its size-tiered policy, within [index] memory_mb."""
    report = compact(archive, memory_mb=ctx.obj.config.index.memory_mb, max_seconds=max_seconds, full=full)
    if as_json:
        emit_json({"segments_before": report.segments_before, "segments_after": report.segments_after,
                   "steps": report.steps, "documents": report.documents, "seconds": round(report.seconds, 3),
                   "stopped": report.stopped, "more_to_merge": report.pending_steps})  # fmt: skip
        return
    if report.stopped == "locked":
        click.echo("another process is writing the search index; nothing merged (try again when it is done)")
        return
    line = (
        f"{report.segments_before} segment(s) -> {report.segments_after} in {report.seconds:.1f}s "
        f"({report.steps} merge step(s), {report.documents} document(s) rewritten)"
    )
    if report.stopped == "time":
        line += "; stopped at --max-seconds, run again to go on"
    elif report.stopped == "memory":
        line += "; the next merge needs more than [index] memory_mb, raise it to go on"
    click.echo(line)
