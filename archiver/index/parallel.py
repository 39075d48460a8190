"""Full builds on every core: Whoosh's multiprocessing writer fed catalog rows.

Whoosh's ``MpWriter`` pickles finished documents to its worker processes, so
the parent would still read every blob and extract every text on one core.
Here a job is a batch of catalog rows instead: each worker process reads the
blobs, extracts the text and analyses it into its own segment (where all the
time goes), and the parent only reads the catalog, then commits the workers'
segments together with the bookmark in one commit.  On a 2-core machine this
is measured by ``bench/search.py --compare-procs``.

**Memory.** A worker's memory is its interpreter plus its posting pool
(``pool_mb``, Whoosh's own estimate of the postings it holds).  A full rebuild
forks its workers with big pools (:data:`POOL_MB`): fewest segments, fastest.
The index update after a backup gets a pool size from its memory budget (see
:func:`archiver.index.writer.plan_memory`) and *spawns* its workers: a forked
worker starts as a copy-on-write view of the whole parent after a backup,
counted again in its RSS and partly copied as it runs (reference counts, the
garbage collector); a spawned one holds only what indexing imports.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable
from pathlib import Path

from whoosh.index import FileIndex
from whoosh.multiproc import MpWriter, SubWriterTask
from whoosh.writing import SegmentWriter

from archiver.catalog import Catalog
from archiver.index.batches import (
    IndexReport,
    ProgressFn,
    catalog_messages,
    forget_caches,
    generation_name,
    placement_digests,
    state_doc,
    write_batch,
)
from archiver.index.documents import CatalogMessage
from archiver.index.fastwrite import FastSegmentWriter
from archiver.index.live import SearchIndexError
from archiver.memory import tune_allocator
from archiver.store import BlobBackend

#: Per worker: Whoosh's in-memory posting pool (its own size estimate).  A worker closes its segment and
#: starts a new one before the pool fills, because a full pool spills sorted runs to disk and merges them
#: back one posting at a time (pickled, then a Python heap merge): measured at a fifth of the indexing time.
POOL_MB = 512
SEGMENT_AT = 0.7  # fraction of the pool at which a worker starts a new segment


LIVENESS_POLL = 1.0  # seconds between checks that the workers still live while waiting on their queues


class _BlobTask(SubWriterTask):
    """A worker process: job = (archive root, catalog messages); reads, extracts and analyses them.

    Results on the queue: ``("progress", messages, problems)`` after each job,
    ``("segment", segment)`` for each segment closed along the way, and
    Whoosh's final ``(None, fieldnames, segment or None)`` when told to stop.
    """

    def __init__(
        self,
        storage,
        indexname,
        jobqueue,
        resultqueue,
        kwargs,
        segment_at: float,
        open_store: Callable[[], BlobBackend],
    ) -> None:  # type: ignore[no-untyped-def]
        super().__init__(storage, indexname, jobqueue, resultqueue, kwargs, True)
        self.segment_at = segment_at  # an attribute, not the module's global: a spawned worker re-imports this module
        # The parent's store opened again (BlobBackend.opener): picklable, and it carries the unlocked envelope
        # of an encrypted archive, so a worker never asks for the passphrase.
        self.open_store = open_store

    def run(self) -> None:  # Whoosh's SubWriterTask.run, with our writer and segments closed along the way
        tune_allocator()  # a forked worker inherits the parent's settings, a spawned one starts without them
        self._ix = self.storage.open_index(self.indexname)
        self.writer = FastSegmentWriter(self._ix, _lk=False, **self.kwargs)
        while self.running:
            job = self.jobqueue.get()
            if job is None:
                break
            self._process_file(*job)
        if not self.running:
            self.writer.cancel()
            return
        writer = self.writer
        if writer.docnum:
            self.resultqueue.put((None, writer.pool.fieldnames, writer._finalize_segment()), timeout=60)
        else:
            writer._close_segment()
            self.resultqueue.put((None, writer.pool.fieldnames, None), timeout=60)

    def _process_file(self, archive_root: str, messages: list[CatalogMessage]) -> None:  # type: ignore[override]
        store = getattr(self, "_store", None)
        if store is None:
            store = self._store = self.open_store()
        problems = write_batch(self.writer, store, messages, replace=False)
        if problems:
            with Catalog.open(Path(archive_root)) as catalog:
                catalog.record_index_problems(problems)
        pool = self.writer.pool
        if pool.currentsize > self.segment_at * pool.limit:
            self.resultqueue.put(("segment", self.writer._finalize_segment()), timeout=60)
            self.writer = FastSegmentWriter(self._ix, _lk=False, **self.kwargs)
            forget_caches()
        self.resultqueue.put(("progress", len(messages), len(problems)))


class _SpawnedBlobTask(_BlobTask):
    """A :class:`_BlobTask` started as a fresh interpreter (``spawn``) whatever the default start method."""

    _start_method = "spawn"

    @staticmethod
    def _Popen(process_obj):  # type: ignore[no-untyped-def, override]
        return multiprocessing.get_context("spawn").Process._Popen(process_obj)  # type: ignore[attr-defined]


class _ParallelBuilder(MpWriter):
    """Whoosh's multiprocessing writer, fed catalog rows instead of documents.

    ``pool_mb`` is each worker's posting pool (and this writer's own, holding only the bookmark);
    ``spawn`` starts the workers as fresh interpreters instead of forks.
    """

    def __init__(
        self,
        ix: FileIndex,
        archive_root: Path,
        open_store: Callable[[], BlobBackend],
        procs: int,
        pool_mb: int = POOL_MB,
        spawn: bool = False,
    ) -> None:
        super().__init__(ix, procs=procs, multisegment=True, limitmb=pool_mb)
        self.archive_root = str(archive_root)
        self.open_store = open_store
        self.progress_events: list[tuple[int, int]] = []
        self._early_results: list = []
        self._closed_segments: list = []
        self._task_class = _SpawnedBlobTask if spawn else _BlobTask
        self._segment_at = SEGMENT_AT
        if spawn:  # queues must come from the workers' context
            context = multiprocessing.get_context("spawn")
            self.jobqueue = context.Queue(self.procs * 4)
            self.resultqueue = context.Queue()

    def _new_task(self) -> SubWriterTask:
        task = self._task_class(
            self.storage,
            self.indexname,
            self.jobqueue,
            self.resultqueue,
            self.subargs,
            self._segment_at,
            self.open_store,
        )
        self.tasks.append(task)
        task.start()
        return task

    def add_messages(self, messages: list[CatalogMessage]) -> None:
        if len(self.tasks) < self.procs:
            self._new_task()
        self._put_job((self.archive_root, messages))
        self._added_sub = True

    def _check_workers(self) -> None:
        """Raise if a worker died: its jobs and segment will never come, and waiting on the queues would be for ever."""
        for task in self.tasks:
            if task.exitcode not in (None, 0):
                raise SearchIndexError(f"an indexing worker failed (exit code {task.exitcode}); see the log")

    def _put_job(self, job: tuple | None) -> None:
        """Queue a job, waiting for room only while the workers live (a full queue of a dead pool never drains)."""
        while True:
            try:
                self.jobqueue.put(job, timeout=LIVENESS_POLL)
                return
            except queue.Full:
                self._check_workers()

    def _next_result(self) -> tuple:
        """The next item a worker posted; one line instead of a hang when they died before posting it."""
        while True:
            try:
                return self.resultqueue.get(timeout=LIVENESS_POLL)
            except queue.Empty:
                self._check_workers()
                if all(task.exitcode is not None for task in self.tasks):  # all gone, a final segment missing
                    raise SearchIndexError("an indexing worker ended without its segment; see the log") from None

    def drain_progress(self) -> tuple[int, int]:
        done = problems = 0
        while True:
            try:
                item = self.resultqueue.get_nowait()
            except Exception:
                break
            if item[0] == "progress":
                done += item[1]
                problems += item[2]
            elif item[0] == "segment":
                self._closed_segments.append(item[1])
            else:  # a worker's final segment: keep it for commit()
                self._early_results.append(item)
        return done, problems

    def _commit(self, mergetype, optimize, merge) -> None:  # type: ignore[override]
        # Progress messages share the result queue with the workers' segments: sort them out.
        for _ in self.tasks:
            self._put_job(None)
        segments = [s for _, _, s in self._early_results]
        waiting = len(self.tasks) - len(segments)
        while waiting:
            item = self._next_result()
            if item[0] == "progress":
                self.progress_events.append((item[1], item[2]))
                continue
            if item[0] == "segment":
                self._closed_segments.append(item[1])
                continue
            segments.append(item[2])
            waiting -= 1
        for task in self.tasks:
            task.join()
        self._check_workers()
        # The policy given to commit() (index_parallel gives NO_MERGE: compaction merges, bounded, later) runs
        # only now, with the workers gone: the two never hold memory at the same time.
        finalsegments = self._merge_segments(mergetype, optimize, merge)
        finalsegments += self._closed_segments + [segment for segment in segments if segment is not None]
        if self._added:
            finalsegments.append(self._finalize_segment())
        else:
            self._close_segment()
        self._commit_toc(finalsegments)
        self._finish()


def index_parallel(
    ix: FileIndex,
    archive_root: Path,
    open_store: Callable[[], BlobBackend],
    catalog: Catalog,
    state: dict,
    upto_rowid: int,
    pending: int,
    procs: int,
    progress: ProgressFn | None,
    report: IndexReport,
    pool_mb: int = POOL_MB,
    spawn: bool = False,
) -> None:
    """One commit for the whole backlog, built by ``procs`` worker processes with ``pool_mb`` pools each."""
    builder = _ParallelBuilder(ix, archive_root, open_store, procs, pool_mb, spawn)
    rowid = state["rowid"]
    done = 0
    digests: dict[str, str] = {}
    try:
        while rows := catalog.messages_for_index(rowid, upto_rowid, 100):
            messages = catalog_messages(catalog, rows)
            builder.add_messages(messages)
            digests |= placement_digests(messages)
            rowid = rows[-1]["rowid"]
            finished, problems = builder.drain_progress()
            done += finished
            report.problems += problems
            if progress and finished:
                progress(done, pending)
        SegmentWriter.update_document(builder, **state_doc(rowid, state["seq"]))
    except BaseException:
        builder.cancel()
        raise
    builder.commit(merge=False)
    catalog.record_index_digests(generation_name(ix), digests)  # after the commit: never ahead of the index
    for finished, problems in builder.progress_events:
        done += finished
        report.problems += problems
    if progress:
        progress(done, pending)
    report.indexed += done
    if done != pending:
        raise SearchIndexError(f"indexing workers indexed {done} of {pending} messages; run `archiver reindex`")
    state["rowid"] = rowid
