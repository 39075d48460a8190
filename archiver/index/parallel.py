"""Full builds on every core: Whoosh's multiprocessing writer fed catalog rows.

Whoosh's ``MpWriter`` pickles finished documents to its worker processes, so
the parent would still read every blob and extract every text on one core.
Here a job is a batch of catalog rows instead: each worker process reads the
blobs, extracts the text and analyses it into its own segment (where all the
time goes), and the parent only reads the catalog, then commits the workers'
segments together with the bookmark in one commit.  On a 2-core machine this
is measured by ``bench/search.py --compare-procs``.
"""

from __future__ import annotations

from pathlib import Path

from whoosh.index import FileIndex
from whoosh.multiproc import MpWriter, SubWriterTask
from whoosh.writing import SegmentWriter

from archiver.catalog import Catalog
from archiver.index.documents import CatalogMessage
from archiver.index.fastwrite import FastSegmentWriter
from archiver.index.writer import (
    IndexReport,
    ProgressFn,
    SearchIndexError,
    _catalog_messages,
    _state_doc,
    _write_batch,
)
from archiver.store import BlobStore

#: Per worker: Whoosh's in-memory posting pool (its own size estimate).  A worker closes its segment and
#: starts a new one before the pool fills, because a full pool spills sorted runs to disk and merges them
#: back one posting at a time (pickled, then a Python heap merge): measured at a fifth of the indexing time.
POOL_MB = 512
SEGMENT_AT = 0.7  # fraction of the pool at which a worker starts a new segment


class _BlobTask(SubWriterTask):
    """A worker process: job = (archive root, catalog messages); reads, extracts and analyses them.

    Results on the queue: ``("progress", messages, problems)`` after each job,
    ``("segment", segment)`` for each segment closed along the way, and
    Whoosh's final ``(None, fieldnames, segment or None)`` when told to stop.
    """

    def run(self) -> None:  # Whoosh's SubWriterTask.run, with our writer and segments closed along the way
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
            store = self._store = BlobStore(Path(archive_root), workers=1)
        problems = _write_batch(self.writer, store, messages, replace=False)
        if problems:
            with Catalog.open(Path(archive_root)) as catalog:
                catalog.record_index_problems(problems)
        pool = self.writer.pool
        if pool.currentsize > SEGMENT_AT * pool.limit:
            self.resultqueue.put(("segment", self.writer._finalize_segment()), timeout=60)
            self.writer = FastSegmentWriter(self._ix, _lk=False, **self.kwargs)
        self.resultqueue.put(("progress", len(messages), len(problems)))


class _ParallelBuilder(MpWriter):
    """Whoosh's multiprocessing writer, fed catalog rows instead of documents."""

    def __init__(self, ix: FileIndex, archive_root: Path, procs: int) -> None:
        super().__init__(ix, procs=procs, multisegment=True, limitmb=POOL_MB)
        self.archive_root = str(archive_root)
        self.progress_events: list[tuple[int, int]] = []
        self._early_results: list = []
        self._closed_segments: list = []

    def _new_task(self) -> SubWriterTask:
        task = _BlobTask(self.storage, self.indexname, self.jobqueue, self.resultqueue, self.subargs, True)
        self.tasks.append(task)
        task.start()
        return task

    def add_messages(self, messages: list[CatalogMessage]) -> None:
        if len(self.tasks) < self.procs:
            self._new_task()
        self.jobqueue.put((self.archive_root, messages))
        self._added_sub = True

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
            self.jobqueue.put(None)
        finalsegments = self._merge_segments(mergetype, optimize, merge)
        segments = [s for _, _, s in self._early_results]
        waiting = len(self.tasks) - len(segments)
        while waiting:
            item = self.resultqueue.get(timeout=3600)
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
            if task.exitcode != 0:
                raise SearchIndexError(f"an indexing worker failed (exit code {task.exitcode}); see the log")
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
    catalog: Catalog,
    state: dict,
    upto_rowid: int,
    pending: int,
    procs: int,
    progress: ProgressFn | None,
    report: IndexReport,
) -> None:
    """One commit for the whole backlog, built by ``procs`` worker processes."""
    builder = _ParallelBuilder(ix, archive_root, procs)
    rowid = state["rowid"]
    done = 0
    try:
        while rows := catalog.messages_for_index(rowid, upto_rowid, 100):
            builder.add_messages(_catalog_messages(catalog, rows))
            rowid = rows[-1]["rowid"]
            finished, problems = builder.drain_progress()
            done += finished
            report.problems += problems
            if progress and finished:
                progress(done, pending)
        SegmentWriter.update_document(builder, **_state_doc(rowid, state["seq"]))
    except BaseException:
        builder.cancel()
        raise
    builder.commit()
    for finished, problems in builder.progress_events:
        done += finished
        report.problems += problems
    if progress:
        progress(done, pending)
    report.indexed += done
    if done != pending:
        raise SearchIndexError(f"indexing workers indexed {done} of {pending} messages; run `archiver reindex`")
    state["rowid"] = rowid
