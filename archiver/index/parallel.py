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
from archiver.index.writer import (
    IndexReport,
    ProgressFn,
    SearchIndexError,
    _catalog_messages,
    _state_doc,
    _write_batch,
)
from archiver.store import BlobStore


class _BlobTask(SubWriterTask):
    """A worker process: job = (archive root, catalog messages); reads, extracts and analyses them."""

    def _process_file(self, archive_root: str, messages: list[CatalogMessage]) -> None:  # type: ignore[override]
        store = getattr(self, "_store", None)
        if store is None:
            store = self._store = BlobStore(Path(archive_root), workers=1)
        problems = _write_batch(self.writer, store, messages, replace=False)
        if problems:
            with Catalog.open(Path(archive_root)) as catalog:
                catalog.record_index_problems(problems)
        self.resultqueue.put(("progress", len(messages), len(problems)))


class _ParallelBuilder(MpWriter):
    """Whoosh's multiprocessing writer, fed catalog rows instead of documents."""

    def __init__(self, ix: FileIndex, archive_root: Path, procs: int) -> None:
        super().__init__(ix, procs=procs, multisegment=True, limitmb=96)
        self.archive_root = str(archive_root)
        self.progress_events: list[tuple[int, int]] = []
        self._early_results: list = []

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
            segments.append(item[2])
            waiting -= 1
        for task in self.tasks:
            task.join()
            if task.exitcode != 0:
                raise SearchIndexError(f"an indexing worker failed (exit code {task.exitcode}); see the log")
        finalsegments += segments
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
