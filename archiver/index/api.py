"""The index's public functions over an open :class:`~archiver.archive.Archive` (see the package docstring)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from archiver.config import IndexConfig
from archiver.index import searcher as _search
from archiver.index.searcher import SearchPage
from archiver.index.visibility import Accounts

if TYPE_CHECKING:
    from archiver.archive import Archive
    from archiver.index.compaction import CompactReport
    from archiver.index.writer import IndexReport, ProgressFn


def search(
    archive: Archive,
    query: str,
    *,
    accounts: Accounts,
    page: int = 1,
    page_size: int = 20,
    sort: str = "relevance",
    snippets: bool = True,
) -> SearchPage:
    """One page of results for ``query``; ``sort`` is ``"relevance"`` or ``"date"`` (newest first).

    ``accounts`` is required: the names the caller may see (empty: no results) or :data:`ALL_ACCOUNTS`.
    """
    return _search.search(
        archive.root,
        archive.catalog,
        archive.store,
        query,
        accounts=accounts,
        page=page,
        page_size=page_size,
        sort=sort,
        snippets=snippets,
    )


def update_index(
    archive: Archive,
    progress: ProgressFn | None = None,
    procs: int | None = None,
    memory_mb: int | None = IndexConfig.memory_mb,
    wait: float = 30.0,
) -> IndexReport:
    """Bring the index up to date with the catalog (creates it when missing).

    ``memory_mb`` bounds the whole process tree meanwhile (``[index] memory_mb``); None: unbounded.
    ``wait``: seconds to wait for another writer's lock before reporting ``skipped``.
    """
    from archiver.index import writer as _writer  # the indexing code: not imported by a search

    return _writer.update_index(
        archive.root, archive.catalog, archive.store, progress, procs, wait=wait, memory_mb=memory_mb
    )


def reindex(archive: Archive, progress: ProgressFn | None = None, procs: int | None = None) -> IndexReport:
    """Rebuild the whole index from the blobs and the catalog."""
    from archiver.index import writer as _writer  # the indexing code: not imported by a search

    return _writer.reindex(archive.root, archive.catalog, archive.store, progress, procs)


def compact(
    archive: Archive, *, memory_mb: int | None, max_seconds: float | None = None, full: bool = False
) -> CompactReport:
    """Merge the index's segments by its size-tiered policy, one committed step at a time.

    Holds the update lock (an update or rebuild running meanwhile: ``stopped="locked"``, nothing done).
    ``memory_mb`` bounds this process (``[index] memory_mb``; None: unbounded); ``max_seconds`` stops it
    between steps once spent (None: until the policy is satisfied); ``full`` merges everything into one
    segment.  Safe to stop at any instant: each step is one atomic commit.
    """
    from archiver.index import compaction as _compaction  # the indexing code: not imported by a search

    return _compaction.compact_index(archive.root, memory_mb=memory_mb, max_seconds=max_seconds, full=full)


def index_status(archive: Archive) -> dict:
    """Documents indexed, the catalog state the index reflects, and its size on disk."""
    from archiver.index import compaction as _compaction  # the indexing code: not imported by a search
    from archiver.index import writer as _writer

    ix = _writer.open_live(archive.root)
    if ix is None:
        return {"exists": False}
    state = _writer.read_state(ix)
    with ix.searcher() as searcher:
        documents = searcher.doc_count() - (1 if state.get("at") else 0)
    root = _writer.index_root(archive.root)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    rowid, seq = archive.catalog.index_high_water()
    return {
        "exists": True,
        "documents": documents,
        "segments": len(_compaction.segment_sizes(ix)),
        "bookmark": {"rowid": state["rowid"], "seq": state["seq"]},
        "behind": {"messages": max(0, rowid - state["rowid"]), "changes": max(0, seq - state["seq"])},
        "bytes": size,
        "problems": archive.catalog.index_problem_count(),
    }
