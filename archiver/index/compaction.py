"""Merging the index's segments: a bounded, size-tiered compaction, run as a step of its own.

Every commit of an update writes one segment and merges nothing (Whoosh's default policy,
``MERGE_SMALL``, re-merges small segments at every commit and folds the whole index into one
each time about thirteen segments gather: an update's cost then grows with the index already
there, not with the new mail).  Segments are instead merged here, outside the update:

**Tiers.** A segment's tier is the power of :data:`TIER_RATIO` its live documents reach above
:data:`FLOOR_DOCS` (every segment smaller than that is tier 0).  When a tier holds
:data:`TIER_MERGE` segments, the smallest :data:`TIER_MERGE` of them become one segment of the
next tier.  A document is thus rewritten about once per tier, ``log(N / FLOOR_DOCS)`` times over
its life, and an index holds at most ``TIER_MERGE - 1`` segments per tier (at most 11 at 10,000
messages, 17 at 100,000): about as many as queries can take before they slow down (what each
segment count costs a query is measured in docs/benchmarks.md).  A segment more than half deleted
(documents replaced by a refresh of their flags or folders) is rewritten, with its tier, to drop
them.  ``full=True`` merges everything into one segment (what ``OPTIMIZE`` does), only when asked.

**Streaming.** A step does not go through Whoosh's ``add_reader`` (every posting into the
in-memory pool, sorted again, spilled to disk when the pool is full): the merged segments'
postings are already sorted, so they are merged as sorted streams straight into the new
segment's field writer, as Whoosh's own multiprocessing writer joins its sub-segments.  Same
postings in the same order as Whoosh's merge (tested); the memory does not grow with the
postings, only with the new segment's term directory and length columns.

**Safety.** A step writes a new segment beside the old ones and then replaces the table of
contents (Whoosh writes it to a temp file and renames it): a crash at any point leaves the old
table of contents and its segments, and the next writer deletes the orphan files.  Readers keep
the segments they opened.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from whoosh.index import FileIndex
from whoosh.reading import SegmentReader

from archiver.errors import ArchiverError
from archiver.index.batches import failure_line, release_memory
from archiver.index.fastwrite import FastSegmentWriter, _ColumnLengths
from archiver.index.generations import update_lock
from archiver.index.live import SearchIndexError, open_live
from archiver.memory import resident_mb

log = logging.getLogger("archiver.index")

#: Segments below this many live documents are all of tier 0 (merging them is cheap whatever their sizes).
FLOOR_DOCS = 1000
#: A tier spans this factor of sizes: tier ``t`` holds segments of ``FLOOR_DOCS * TIER_RATIO**(t-1)`` documents
#: up to ``FLOOR_DOCS * TIER_RATIO**t``.
TIER_RATIO = 6
#: Segments of one tier merged in a step; a tier with fewer is left alone.
TIER_MERGE = 6
#: An update that leaves more segments than this compacts (for at most CROWDED_SECONDS) before it returns: the
#: safety net of an archive nobody compacts (no daemon, no `archiver compact-index`).  Twice the policy's bound
#: at 10,000 messages, so it stays out of the way of whoever does compact.
CROWDED = 24
CROWDED_SECONDS = 60.0
#: A segment with at least this fraction of its documents deleted is rewritten (with its tier's smaller ones).
DELETED_SHARE = 0.5


@dataclass(frozen=True)
class SegmentSize:
    """What the policy knows of a segment: its live documents and all it holds (deleted ones included)."""

    live: int
    total: int


@dataclass
class CompactReport:
    """What a compaction did: segments before and after, merge steps, documents rewritten, and why it stopped."""

    segments_before: int = 0
    segments_after: int = 0
    steps: int = 0
    documents: int = 0
    seconds: float = 0.0
    stopped: str | None = None  # "time" (max_seconds spent), "memory" (a step too big for the budget), "locked"
    pending_steps: bool = False  # the policy had more to merge when it stopped


def tier(live: int) -> int:
    """The tier of a segment with ``live`` documents (0: below :data:`FLOOR_DOCS`)."""
    if live < FLOOR_DOCS:
        return 0
    return 1 + int(math.log(live / FLOOR_DOCS, TIER_RATIO) + 1e-9)


def next_step(sizes: Sequence[SegmentSize], *, full: bool = False) -> list[int]:
    """Indexes (into ``sizes``) of the segments the next compaction step merges; empty: nothing to do.

    The lowest tier with :data:`TIER_MERGE` segments gives its smallest ones; else a segment at least
    :data:`DELETED_SHARE` deleted is rewritten with the smaller segments of its tier.  ``full``: all of
    them, when there are two or more or one holds deleted documents.
    """
    if full:
        if len(sizes) > 1 or any(s.total > s.live for s in sizes):
            return list(range(len(sizes)))
        return []
    by_tier: dict[int, list[int]] = {}
    for number, size in sorted(enumerate(sizes), key=lambda item: (item[1].live, item[0])):
        by_tier.setdefault(tier(size.live), []).append(number)
    for level in sorted(by_tier):
        members = by_tier[level]
        if len(members) >= TIER_MERGE:
            return sorted(members[:TIER_MERGE])
    for level in sorted(by_tier):
        members = by_tier[level]
        for position, number in enumerate(members):
            size = sizes[number]
            if size.total and (size.total - size.live) >= DELETED_SHARE * size.total:
                return sorted(members[: position + 1])
    return []


#: The memory model of a step, measured on ``bench/index_growth.py``'s generated mail (mmap off): the new
#: segment's term directory and length columns grow with its documents, the rest is fixed.
STEP_BASE_MB = 10.0
STEP_MB_PER_1000_DOCS = 1.5


def step_memory_mb(documents: int) -> float:
    """What merging ``documents`` live documents adds to the process at its peak (MB, estimated)."""
    return STEP_BASE_MB + STEP_MB_PER_1000_DOCS * documents / 1000


def segment_sizes(ix: FileIndex) -> list[SegmentSize]:
    """The live and total documents of each segment of ``ix``'s latest table of contents, in its order."""
    return [SegmentSize(segment.doc_count(), segment.doc_count_all()) for segment in ix._segments()]


def segment_postings(reader: SegmentReader, basedoc: int, docmap: dict[int, int] | None) -> Iterator[tuple]:
    """Every posting of ``reader`` as Whoosh's ``iter_postings`` gives it, renumbered, deleted documents dropped.

    ``(fieldname, term, docnum, weight, value)`` in (field, term, document) order; ``docmap`` (old →
    new number, live documents only) when the segment has deletions, else ``basedoc + docnum``.  Whoosh
    looks every term up again in the term directory (a hash probe of many small reads) and steps a
    matcher per posting; here the directory is read in order once and each posting block decoded whole.
    """
    terms = reader._terms
    schema = reader.schema
    postfile, codec = terms._postfile, terms._codec
    for (fieldname, btext), terminfo in terms.items():
        if fieldname not in schema:
            continue
        matcher = codec.postings_reader(postfile, terminfo, schema[fieldname].format, term=(fieldname, btext))
        blocks = _leaf_blocks(matcher) if not terminfo.is_inlined() else _inline_block(matcher)
        for ids, weights, values in blocks:
            if docmap is None:
                for docnum, weight, value in zip(ids, weights, values, strict=True):
                    yield fieldname, btext, basedoc + docnum, weight, value
            else:
                for docnum, weight, value in zip(ids, weights, values, strict=True):
                    if docnum in docmap:
                        yield fieldname, btext, docmap[docnum], weight, value


def _inline_block(matcher) -> Iterator[tuple[Sequence[int], Sequence[float], Sequence]]:  # type: ignore[no-untyped-def]
    """The postings inlined in a rare term's directory entry, as one block (through the matcher: they are few)."""
    postings = []
    while matcher.is_active():
        postings.append((matcher.id(), matcher.weight(), matcher.value()))
        matcher.next()
    if postings:
        ids, weights, values = zip(*postings, strict=True)
        yield ids, weights, values


def _leaf_blocks(matcher) -> Iterator[tuple[Sequence[int], Sequence[float], Sequence]]:  # type: ignore[no-untyped-def]
    """(ids, weights, values) of each block of a term's postings: the values Whoosh's matcher would give."""
    while matcher.is_active():
        matcher._read_ids()
        matcher._read_weights()
        matcher._read_values()
        yield matcher._ids, matcher._weights, matcher._values
        matcher._next_block()


class _MergingWriter(FastSegmentWriter):
    """A segment writer whose one segment is the merge of existing segments, streamed (see the module docstring)."""

    def merge_from(self, segments: Sequence) -> None:
        """Copy the stored fields and columns of ``segments`` (dropping deleted documents) and queue their postings."""
        schema = self.schema
        self._readers: list[SegmentReader] = []
        self._sources: list[Iterator] = []
        for segment in segments:
            reader = SegmentReader(self.storage, schema, segment)
            self._readers.append(reader)
            fieldnames = set(schema.names()) | {name for name in reader.indexed_field_names() if name in schema}
            basedoc = self.docnum
            docmap = self.write_per_doc(fieldnames, reader)
            self._sources.append(segment_postings(reader, basedoc, docmap))
        self._added = True

    def _flush_segment(self) -> None:
        self.perdocwriter.close()
        perdoc = self.per_document_reader()
        try:
            # Each source is sorted by (field, term, document) and the document ranges do not overlap:
            # the merged stream is in the order the pool would have sorted it into.
            self.fieldwriter.add_postings(self.schema, _ColumnLengths(perdoc), heapq.merge(*self._sources))
            self.fieldwriter.close()
        finally:
            perdoc.close()
            for reader in self._readers:
                reader.close()


def merge_step(ix: FileIndex, chosen: Sequence[int], *, timeout: float = 60.0) -> int:
    """Merge the segments at positions ``chosen`` of ``ix`` into one, in one commit; the documents rewritten.

    The caller holds the index's update lock: the segments cannot change between choosing and merging.
    """
    writer = _MergingWriter(ix, timeout=timeout)
    try:
        segments = list(writer.segments)
        picked = [segments[number] for number in chosen]
        picked_ids = {segment.segment_id() for segment in picked}
        writer.merge_from(picked)
        documents = writer.docnum
        if not documents:  # every document of the picked segments was deleted: no segment to write
            writer._added = False
    except BaseException:
        writer.cancel()
        raise
    writer.commit(mergetype=lambda _writer, existing: [s for s in existing if s.segment_id() not in picked_ids])
    return documents


def compact_index(
    archive_root: Path,
    *,
    memory_mb: int | None,
    max_seconds: float | None = None,
    full: bool = False,
    wait: float = 30.0,
) -> CompactReport:
    """Merge the live generation's segments by the tier policy (:func:`next_step`), one committed step at a time.

    Holds the update lock (waiting at most ``wait`` seconds, else ``stopped="locked"``).  Between steps it
    stops once ``max_seconds`` are spent (``stopped="time"``; a step once begun is finished, it is one
    commit).  ``memory_mb`` bounds the whole process: segments are read without mmap, and a step whose
    estimated peak (:func:`step_memory_mb`) does not fit what is left is not started (``stopped="memory"``).
    """
    report = CompactReport()
    started = time.monotonic()
    try:
        with update_lock(archive_root, wait) as locked:
            if not locked:
                report.stopped = "locked"
                return report
            ix = open_live(archive_root)
            if ix is None:
                return report
            _compact_locked(ix, report, started, memory_mb=memory_mb, max_seconds=max_seconds, full=full)
    except ArchiverError:
        raise
    except Exception as exc:
        raise SearchIndexError(f"the search index was not compacted: {failure_line(exc)}") from exc
    report.seconds = time.monotonic() - started
    return report


def relieve_crowding(ix: FileIndex, memory_mb: int | None) -> CompactReport | None:
    """With the update lock held: compact by the policy when more than :data:`CROWDED` segments gathered."""
    if len(ix._segments()) <= CROWDED:
        return None
    report = CompactReport()
    started = time.monotonic()
    _compact_locked(ix, report, started, memory_mb=memory_mb, max_seconds=CROWDED_SECONDS, full=False)
    report.seconds = time.monotonic() - started
    log.info("the search index had %d segments: %d merge step(s) left %d in %.1f s", report.segments_before,
             report.steps, report.segments_after, report.seconds)  # fmt: skip
    return report


def _compact_locked(
    ix: FileIndex,
    report: CompactReport,
    started: float,
    *,
    memory_mb: int | None,
    max_seconds: float | None,
    full: bool,
) -> None:
    if memory_mb is not None:
        ix.storage.supports_mmap = False  # with mmap, Whoosh copies each file of a segment it opens into memory
    sizes = segment_sizes(ix)
    report.segments_before = report.segments_after = len(sizes)
    while chosen := next_step(sizes, full=full):
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            report.stopped, report.pending_steps = "time", True
            break
        documents = sum(sizes[number].live for number in chosen)
        if memory_mb is not None:
            release_memory()
            if resident_mb() + step_memory_mb(documents) > memory_mb:
                report.stopped, report.pending_steps = "memory", True
                log.info("index compaction: merging %d documents would exceed the %d MB budget", documents, memory_mb)
                break
        step_started = time.monotonic()
        report.documents += merge_step(ix, chosen)
        report.steps += 1
        log.debug("index compaction: %d segments (%d documents) merged in %.1f s", len(chosen), documents,
                  time.monotonic() - step_started)  # fmt: skip
        sizes = segment_sizes(ix)
        report.segments_after = len(sizes)
        full = False  # one full merge leaves one segment
