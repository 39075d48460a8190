"""Keeping the index in step with the catalog: incremental updates and full rebuilds.

The files on disk (generations, ``CURRENT``, the update lock) are :mod:`archiver.index.generations`'.

**Bookmark.** The index holds one ``state`` document with the catalog state it
reflects: the largest ``messages.rowid`` indexed and the last
``placement_changes.seq`` absorbed.  It is rewritten in the same Whoosh commit
as each batch, so after a crash at any point (between a catalog commit and the
index commit, or in the middle of a batch) the next :func:`update_index`
starts from exactly what the index holds.  SQLite serialises writers, so
rowids are assigned in commit order and a rowid bookmark never skips a row.

**Never blocking readers.** Whoosh writers add segment files and then replace
the table of contents; readers keep the generation they opened.  A rebuild
builds a whole new generation and then swaps ``CURRENT``; old generations are
deleted only after the swap, and open files stay readable on POSIX.

**Linear.** No commit here merges the segments already there (Whoosh's default does, and every dozen
segments folds the whole index again): an update costs what its new mail costs.  Segments are merged
by :mod:`archiver.index.compaction`, a bounded step of its own (run by whoever schedules it; an update
that finds the index crowded, because nobody did, compacts for a bounded time before returning).

**Both cores.** A full build (or a large backlog) is done by worker processes,
see :mod:`archiver.index.parallel`.

**Memory.** :func:`reindex` (explicit and rare) uses both cores and big
posting pools: fastest, a few hundred MB.  :func:`update_index` (what every
backup runs) is given a memory budget (``[index] memory_mb``) for the whole
process tree while it runs, and :func:`plan_memory` turns it into a number of
worker processes and a posting-pool size, from what this process already holds
(read from /proc) and the measured costs of indexing.  Below a few hundred MB it
indexes in this process, committing a segment every :data:`COMMIT_DOCS` messages.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from whoosh.index import FileIndex

from archiver.catalog import Catalog
from archiver.config import IndexConfig
from archiver.errors import ArchiverError
from archiver.index.batches import (
    IndexReport,
    MemoryPlan,
    ProgressFn,
    catalog_messages,
    failure_line,
    forget_caches,
    generation_name,
    placement_digests,
    release_memory,
    state_doc,
    write_batch,
)
from archiver.index.compaction import relieve_crowding
from archiver.index.fastwrite import FastSegmentWriter
from archiver.index.generations import new_generation, read_state, switch, update_lock
from archiver.index.hint import HINT_FILE, SCHEMA_VERSION, index_root
from archiver.index.hint import live_dir as _live_dir
from archiver.index.hint import up_to_date as _up_to_date
from archiver.index.live import SearchIndexError, open_live
from archiver.index.parallel import POOL_MB, SEGMENT_AT, index_parallel
from archiver.memory import resident_mb
from archiver.store import BlobBackend

log = logging.getLogger("archiver.index")

BATCH = 500  # documents per incremental commit (each commit is a bookmark)
PARALLEL_FROM = 2000  # below this many new messages, one process is faster than starting workers

#: Default budget, in MB, for the index update a backup runs: the whole process tree, this process included.
DEFAULT_MEMORY_MB = IndexConfig.memory_mb
#: The cost model of :func:`plan_memory`, measured on ``bench/backup_throughput.py``'s generated mailbox (messages
#: up to 10 MB): the peak is mostly a big message being parsed, far less the posting pool.
WORKER_BASE_MB = 100  # a spawned worker: interpreter and imports (~35), a 10 MB message being parsed (~60)
POOL_FACTOR = 1.0  # resident MB per MB of Whoosh's pool estimate
INPROC_SLACK_MB = 90  # in this process: imports and caches of indexing (~40), a 10 MB message being parsed (~50)
MIN_WORKER_POOL_MB = 24  # smaller pools make too many segments: rather fewer workers
MIN_POOL_MB = 8
COMMIT_DOCS = 2500  # budgeted, in this process: messages per commit (a segment and a bookmark)
#: The pool of a one-process rebuild (``reindex --procs 1``): half a worker's, so the process stays within what two
#: workers take together (with POOL_MB it peaked higher than two workers do).
INPROC_REBUILD_POOL_MB = POOL_MB // 2
INPROC_POOL_MB = 64  # the pool of an unbudgeted in-process batch (its segment is flushed at every commit anyway)


def plan_memory(budget_mb: int | None, pending: int, procs: int, base_mb: float) -> MemoryPlan:
    """Processes and pool size for indexing ``pending`` messages within ``budget_mb`` (whole tree).

    Without a budget (a rebuild): ``procs`` forked workers with :data:`POOL_MB <archiver.index.parallel.POOL_MB>`
    pools from :data:`PARALLEL_FROM` messages on.  With one: ``base_mb`` (this process, now) is taken off; the
    most workers (up to ``procs``) whose pools still get :data:`MIN_WORKER_POOL_MB` share the rest, each
    costing :data:`WORKER_BASE_MB` plus its pool; when not even one fits, or the backlog is small, the
    messages are indexed here with what is left after :data:`INPROC_SLACK_MB`.  Budgets too small for
    that still get :data:`MIN_POOL_MB` pools (the update works, only above its budget).
    """
    if budget_mb is None:
        if procs > 1 and pending >= PARALLEL_FROM:
            return MemoryPlan(procs, POOL_MB)
        return MemoryPlan(0, INPROC_REBUILD_POOL_MB if pending >= PARALLEL_FROM else INPROC_POOL_MB)
    spare = budget_mb - base_mb
    if pending >= PARALLEL_FROM:
        for workers in range(procs, 1, -1):  # one worker is no faster than this process, and costs more
            pool = int((spare / workers - WORKER_BASE_MB) / POOL_FACTOR)
            if pool >= MIN_WORKER_POOL_MB:
                estimate = base_mb + workers * (WORKER_BASE_MB + pool * POOL_FACTOR)
                return MemoryPlan(workers, pool, True, budget_mb, round(base_mb, 1), round(estimate, 1))
    pool = max(MIN_POOL_MB, min(INPROC_POOL_MB, int((spare - INPROC_SLACK_MB) / POOL_FACTOR)))
    estimate = base_mb + INPROC_SLACK_MB + pool * POOL_FACTOR
    return MemoryPlan(0, pool, False, budget_mb, round(base_mb, 1), round(estimate, 1))


def _index_new(
    ix: FileIndex,
    archive_root: Path,
    catalog: Catalog,
    store: BlobBackend,
    state: dict,
    upto_rowid: int,
    procs: int,
    progress: ProgressFn | None,
    report: IndexReport,
    budget_mb: int | None = None,
    rebuild: bool = False,
) -> None:
    """Index messages with rowid in (state.rowid, upto_rowid], committing a bookmark per batch.

    ``rebuild``: into a generation that is not live yet (no bookmark needed on the way).
    """
    pending = catalog.messages_pending_index(state["rowid"], upto_rowid)
    if not pending:
        return
    if progress:
        progress(0, pending)  # a bar at once: the first batch may take a while (workers starting, big messages)
    if budget_mb is not None:
        release_memory()
    plan = plan_memory(budget_mb, pending, procs, resident_mb() if budget_mb is not None else 0.0)
    report.plan = report.plan or plan
    log.log(
        logging.INFO if pending >= PARALLEL_FROM else logging.DEBUG,
        "indexing %d message(s): %s, posting pool %d MB%s", pending,
        f"{plan.procs} worker process(es)" if plan.procs else "in this process", plan.pool_mb,
        f" (budget {plan.budget_mb} MB, {plan.base_mb:.0f} MB in use, about {plan.estimate_mb:.0f} MB expected)"
        if plan.budget_mb is not None else "",
    )  # fmt: skip
    fresh = state["rowid"] == 0
    if plan.procs > 1:
        index_parallel(
            ix,
            archive_root,
            store.opener(),
            catalog,
            state,
            upto_rowid,
            pending,
            plan.procs,
            progress,
            report,
            plan.pool_mb,
            plan.spawn,
        )
        return
    # A commit (a segment, a bookmark) per COMMIT_DOCS messages, never merging the segments already there
    # (compaction does that, bounded: see archiver.index.compaction).  Budgeted, the pool spills sorted runs
    # to disk when full (bounded memory, one segment).  Unbudgeted (a rebuild, or an update told to go as
    # fast as one), a segment is closed before its pool would spill, as a rebuild's workers do; a rebuild
    # commits nothing else on the way (its generation is not live, a crash deletes it).
    commit_every = COMMIT_DOCS if not rebuild else pending + 1
    close_at = None if plan.budget_mb is not None else SEGMENT_AT * plan.pool_mb * 2**20
    rowid = state["rowid"]
    writer: FastSegmentWriter | None = None
    held = 0  # messages in the open writer
    problems: dict[str, list[str]] = {}
    digests: dict[str, str] = {}
    try:
        while True:
            rows = catalog.messages_for_index(rowid, upto_rowid, BATCH)
            if rows:
                writer = writer or FastSegmentWriter(ix, timeout=60.0, limitmb=plan.pool_mb)
                messages = catalog_messages(catalog, rows)
                problems |= write_batch(writer, store, messages, replace=not fresh)
                digests |= placement_digests(messages)
                rowid = rows[-1]["rowid"]
                held += len(rows)
                if progress:
                    progress(report.indexed + held, pending)
            full = close_at is not None and writer is not None and writer.pool.currentsize > close_at
            if writer is not None and (held >= commit_every or full or not rows):
                writer.update_document(**state_doc(rowid, state["seq"]))
                committing, writer = writer, None
                committing.commit(merge=False)
                if plan.budget_mb is not None:
                    forget_caches()
                catalog.record_index_problems(problems)
                catalog.record_index_digests(generation_name(ix), digests)  # after the commit: never ahead of it
                report.indexed += held
                report.problems += len(problems)
                held, problems, digests = 0, {}, {}
            if not rows:
                break
    except BaseException:
        if writer is not None:
            writer.cancel()
        raise
    state["rowid"] = rowid


def _refresh_changed(
    ix: FileIndex,
    catalog: Catalog,
    store: BlobBackend,
    state: dict,
    old_rowid: int,
    upto_seq: int,
    report: IndexReport,
    budget_mb: int | None = None,
    carry: bool = False,
) -> None:
    """Rewrite the documents of blobs whose placements changed their account/folder/flags fields.

    A blob whose placements changed but whose fields did not (a UIDVALIDITY reset re-maps every
    message onto new placements with the same folder and flags) is skipped: its digest equals the
    one recorded when its document was written.  ``carry``: the caller commits new messages next, so
    when nothing is left to rewrite the new bookmark rides on that commit (no segment holding only the
    bookmark) and the caller forgets the placement changes after it.
    """
    changed = catalog.changed_blobs_for_index(state["seq"], upto_seq)
    rows = [row for row in catalog.message_rows_for_index(changed) if row["rowid"] <= old_rowid]
    pool_mb = plan_memory(budget_mb, 0, 1, resident_mb() if budget_mb is not None else 0.0).pool_mb
    for start in range(0, max(len(rows), 1), BATCH):
        last = start + BATCH >= len(rows)
        messages = catalog_messages(catalog, rows[start : start + BATCH])
        digests = placement_digests(messages)
        known = catalog.index_digests(generation_name(ix), list(digests))
        messages = [m for m in messages if known.get(m.blob_id) != digests[m.blob_id]]
        report.unchanged += len(digests) - len(messages)
        if not messages and (not last or carry):
            continue
        writer = FastSegmentWriter(ix, timeout=60.0, limitmb=pool_mb)
        try:
            problems = write_batch(writer, store, messages, replace=True)
            writer.update_document(**state_doc(state["rowid"], upto_seq if last else state["seq"]))
        except BaseException:
            writer.cancel()
            raise
        writer.commit(merge=False)
        catalog.record_index_problems(problems)
        catalog.record_index_digests(generation_name(ix), {m.blob_id: digests[m.blob_id] for m in messages})
        report.refreshed += len(messages)
    state["seq"] = upto_seq
    if not carry:
        catalog.forget_placement_changes(upto_seq)


def update_index(
    archive_root: Path,
    catalog: Catalog,
    store: BlobBackend,
    progress: ProgressFn | None = None,
    procs: int | None = None,
    wait: float = 30.0,
    memory_mb: int | None = DEFAULT_MEMORY_MB,
) -> IndexReport:
    """Bring the index up to the catalog's current state (creating it if there is none).

    Safe to call at any time from any process: writers serialise on a lock
    (waiting at most ``wait`` seconds, then reporting ``skipped``: the
    bookmark guarantees the next call catches up), readers are never blocked.
    ``memory_mb`` bounds the whole process tree while indexing (see :func:`plan_memory`;
    None: as fast as a rebuild, unbounded).
    """
    report = IndexReport()
    started = time.monotonic()
    procs = procs or min(2, os.cpu_count() or 1)
    if _up_to_date(archive_root, catalog):
        report.seconds = time.monotonic() - started
        return report
    with update_lock(archive_root, wait) as locked:
        if not locked:
            report.skipped = "another process is writing the index; the next update catches up"
            return report
        ix = open_live(archive_root)
        if ix is not None and memory_mb is not None:
            # Before any reader opens: with mmap, Whoosh copies every file of every segment it opens into memory
            # (its BufferFile wraps the mapping in a BytesIO), so reading the bookmark alone would hold the index.
            ix.storage.supports_mmap = False
        state = read_state(ix) if ix is not None else None
        upto_rowid, upto_seq = catalog.index_high_water()
        if ix is None or state is None or state.get("schema") != SCHEMA_VERSION or state["rowid"] > upto_rowid:
            if ix is not None:
                log.warning("the search index does not match this catalog or archiver version: rebuilding it")
            # Live at once: every committed batch is kept (and searchable) even if this run dies.
            name, ix = new_generation(archive_root)
            state = {"rowid": 0, "seq": 0}
            _commit_state(ix, state)
            switch(archive_root, name)
            catalog.keep_index_digests_of(name)
            report.rebuilt = True
        if memory_mb is not None:
            ix.storage.supports_mmap = False  # (a generation just created)
        # Changed placements first: when only the bookmark is left to write, it rides on the new messages' commit.
        carry = catalog.messages_pending_index(state["rowid"], upto_rowid) > 0
        if upto_seq > state["seq"]:
            _refresh_changed(ix, catalog, store, state, state["rowid"], upto_seq, report, memory_mb, carry=carry)
        _index_new(ix, archive_root, catalog, store, state, upto_rowid, procs, progress, report, memory_mb)
        if carry:
            catalog.forget_placement_changes(state["seq"])
        _write_hint(archive_root, state)
        if report.indexed or report.refreshed:
            relieve_crowding(ix, memory_mb)
    report.seconds = time.monotonic() - started
    return report


def _write_hint(archive_root: Path, state: dict) -> None:
    """Leave the committed bookmark beside the live generation, so a no-change run need not open the index.

    The index's own state document stays the truth: the hint is written only after that commit,
    lives inside the generation it describes (a rebuild starts without one), and is trusted only
    when it matches the catalog's high-water marks (the same last message, no newer placement change);
    anything else opens the index as before.
    """
    live = _live_dir(archive_root)
    if live is None:
        return
    text = json.dumps({"rowid": state["rowid"], "seq": state["seq"], "schema": SCHEMA_VERSION})
    temp = live / f"{HINT_FILE}.{os.getpid()}.tmp"
    try:
        temp.write_text(text)
        os.replace(temp, live / HINT_FILE)
    except OSError as exc:  # only an optimisation: never fail the update for it
        log.debug("index hint not written: %s", exc)
        temp.unlink(missing_ok=True)


def _commit_state(ix: FileIndex, state: dict) -> None:
    writer = FastSegmentWriter(ix, timeout=60.0)
    writer.update_document(**state_doc(state["rowid"], state["seq"]))
    writer.commit(merge=False)


def reindex(
    archive_root: Path,
    catalog: Catalog,
    store: BlobBackend,
    progress: ProgressFn | None = None,
    procs: int | None = None,
) -> IndexReport:
    """Rebuild the index from scratch into a new generation, then swap it in.

    Searches keep using the old generation until the swap.  Holds the update
    lock throughout, so a backup finishing meanwhile leaves its messages to
    the catch-up pass done here before the swap, or to the next update.
    A message that cannot be read is isolated (see :func:`_write_message`); anything else
    that stops the rebuild (a disk, a lock, a bug) is raised as one :class:`SearchIndexError`.
    """
    try:
        return _rebuild(archive_root, catalog, store, progress, procs)
    except ArchiverError:
        raise
    except Exception as exc:
        raise SearchIndexError(f"the search index was not rebuilt: {failure_line(exc)}") from exc


def _rebuild(
    archive_root: Path, catalog: Catalog, store: BlobBackend, progress: ProgressFn | None, procs: int | None
) -> IndexReport:
    report = IndexReport(rebuilt=True)
    started = time.monotonic()
    procs = procs or min(2, os.cpu_count() or 1)
    with update_lock(archive_root, wait=600.0) as locked:
        if not locked:
            raise SearchIndexError("another process is writing the search index; try again when it is done")
        name, ix = new_generation(archive_root)
        try:
            state = {"rowid": 0, "seq": 0}
            upto_rowid, upto_seq = catalog.index_high_water()
            _index_new(ix, archive_root, catalog, store, state, upto_rowid, procs, progress, report, rebuild=True)
            state["seq"] = upto_seq
            _commit_state(ix, state)
            # Catch up with what was committed to the catalog during the build.
            upto_rowid, upto_seq = catalog.index_high_water()
            old_rowid = state["rowid"]
            _index_new(ix, archive_root, catalog, store, state, upto_rowid, 1, None, report)
            if upto_seq > state["seq"]:
                _refresh_changed(ix, catalog, store, state, old_rowid, upto_seq, report)
            catalog.forget_placement_changes(state["seq"])
        except BaseException:
            shutil.rmtree(index_root(archive_root) / name, ignore_errors=True)
            raise
        switch(archive_root, name)
        catalog.keep_index_digests_of(name)
        _write_hint(archive_root, state)  # the lag (archiver.index.lag) and the next no-change run read it
    report.seconds = time.monotonic() - started
    return report
