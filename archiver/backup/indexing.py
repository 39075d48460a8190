"""The search index update after a backup: blob → catalog → index, and never a reason to lose the run.

The index bookmarks the catalog state it reflects, so whatever is not indexed
now is indexed by the next run or ``archiver reindex``; a failure here is one
problem line on the run, never a failed backup of mail that is safely stored.
Every update that indexes something says so in ``index/activity.json``
(:mod:`archiver.index.lag`), so ``status``, the web UI and ``/metrics`` can tell
how far it is, whichever process runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from archiver.archive import Archive
from archiver.backup.faults import record_quietly
from archiver.index.hint import up_to_date
from archiver.index.lag import ActivityRecorder

log = logging.getLogger("archiver.backup")


@dataclass(frozen=True)
class IndexOutcome:
    """What the index update after a backup did: ``error`` is one line when it failed (the mail is safe)."""

    indexed: int = 0
    problems: int = 0  # messages indexed only in part (their reasons are in the catalog's index_problems)
    error: str | None = None
    skipped: bool = False  # another process held the index all the while (it, or the next update, catches up)


def update_search_index(
    archive: Archive,
    run_id: int,
    memory_mb: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    role: str = "backup",
    wait: float = 30.0,
    recorder: ActivityRecorder | None = None,
) -> IndexOutcome:
    """Index what the run committed; a failure never fails the backup's data.

    ``memory_mb`` is the ``[index] memory_mb`` budget for the whole process tree (None: the default).
    ``progress(done, total)`` hears how far the update is (never called when there is nothing to index).
    ``role`` names who indexes in ``index/activity.json`` (``recorder``: one already begun, the worker's);
    ``wait`` is how long to wait for another writer's lock.
    A failure is logged, recorded on the run and returned, for the caller to report it as the
    problem it is (a backup whose mail cannot be searched is not plainly ``ok``).
    """
    own = recorder is None  # a recorder given to us is finished by its owner (the worker, after its last pass)
    recorder = recorder or ActivityRecorder(archive.root, role)

    def report(done: int, total: int) -> None:
        recorder.progress(done, total)
        if progress is not None:
            progress(done, total)

    try:
        if up_to_date(archive.root, archive.catalog):  # nothing to index: Whoosh is not even imported
            return IndexOutcome()
        # Here, not at the top: importing the writer imports Whoosh, which a no-change run never needs.
        from archiver.index import update_index

        budget = {} if memory_mb is None else {"memory_mb": memory_mb}  # (update_index's None means unbounded)
        done = update_index(archive, progress=report, wait=wait, **budget)
        if own and recorder.started:
            recorder.finish()
        return IndexOutcome(done.indexed + done.refreshed, done.problems, skipped=done.skipped is not None)
    except Exception as exc:
        error = f"search index not updated (the next run catches up): {' '.join(str(exc).split())[:300]}"
        log.error("%s", error)
        record_quietly(archive.catalog, run_id, None, error)
        recorder.finish(error)
        return IndexOutcome(error=error)


def compact_quietly(archive: Archive, memory_mb: int | None, max_seconds: float) -> None:
    """Merge the index's segments by its tier policy, within ``memory_mb`` and ``max_seconds``; never fails a run.

    Updates never merge (their cost follows the new mail); this is where the segments they leave are
    merged, by whoever indexes in the background: the index worker, the daemon after a run.
    """
    try:
        from archiver.index import compact  # Whoosh: only once something was indexed

        report = compact(archive, memory_mb=memory_mb, max_seconds=max_seconds)
    except Exception as exc:  # the index is as it was: each compaction step is one atomic commit
        log.warning("search index not compacted (the next update tries again): %s", " ".join(str(exc).split())[:300])
        return
    if report.steps:
        log.info(
            "search index: %d segment(s) compacted into %d in %.1fs",
            report.segments_before, report.segments_after, report.seconds,
        )  # fmt: skip


__all__ = ["IndexOutcome", "compact_quietly", "update_search_index"]
