"""Full-text search over the whole archive (Whoosh); the only package that knows Whoosh.

The index is derived data: one Whoosh document per unique message (blob),
rebuilt at any time from the blobs and the catalog.  Public API (what the CLI
and the web UI call; everything takes an open :class:`archiver.archive.Archive`)::

    search(archive, query, *, accounts, page=1, page_size=20, sort="relevance") -> SearchPage
        accounts (required): the account names the caller may see ([]: nothing),
          or ALL_ACCOUNTS (administrators only); see ``visibility``.
        SearchPage(query, total, page, page_size, hits: tuple[Hit, ...], seconds), .pages
        Hit(blob_id, score, date, sender, subject, snippet_html, folders, size)
          snippet_html is HTML-escaped text where only <mark>…</mark> is markup;
          folders is a tuple of (account, folder) pairs, the visible ones only.
        Raises QuerySyntaxError (an ArchiverError) for a query it cannot read.
    update_index(archive, progress=None, procs=None, memory_mb=150) -> IndexReport
        Index what the catalog gained since the index's bookmark and refresh the
        folders/flags of messages whose placements changed.  Cheap when nothing
        changed; the backup calls it after each run.  ``memory_mb`` bounds the
        whole process tree while it indexes (None: unbounded, like a rebuild);
        ``IndexReport.plan`` says which processes and pool size it chose.
    reindex(archive, progress=None, procs=None) -> IndexReport
        Rebuild from scratch into a new generation and swap it in.
    index_status(archive) -> dict   documents, bookmark, size on disk

Query syntax: see :mod:`archiver.index.query` and the README.  Layout:
``analysis`` (tokenizer), ``documents`` (schema, one blob → one document),
``query`` (syntax → Whoosh query), ``visibility`` (who sees what), ``writer`` (incremental and full builds,
on-disk generations), ``parallel`` (full builds on both cores), ``search``
(results and snippets), and the two modules that make Whoosh fast enough at
100,000 messages: ``fastmatch`` (phrases, counting, ranking and date order
with set operations over whole posting blocks) and ``fastwrite`` (the hot
spots of Whoosh's writer, byte-identical output).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archiver.index import search as _search
from archiver.index import writer as _writer
from archiver.index.query import QuerySyntaxError
from archiver.index.search import Hit, SearchPage
from archiver.index.visibility import ALL_ACCOUNTS, Accounts
from archiver.index.writer import IndexReport, ProgressFn, SearchIndexError

if TYPE_CHECKING:
    from archiver.archive import Archive

__all__ = [
    "ALL_ACCOUNTS",
    "Accounts",
    "Hit",
    "IndexReport",
    "QuerySyntaxError",
    "SearchIndexError",
    "SearchPage",
    "index_status",
    "reindex",
    "search",
    "update_index",
]


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
    memory_mb: int | None = _writer.DEFAULT_MEMORY_MB,
) -> IndexReport:
    """Bring the index up to date with the catalog (creates it when missing).

    ``memory_mb`` bounds the whole process tree meanwhile (``[index] memory_mb``); None: unbounded.
    """
    return _writer.update_index(archive.root, archive.catalog, archive.store, progress, procs, memory_mb=memory_mb)


def reindex(archive: Archive, progress: ProgressFn | None = None, procs: int | None = None) -> IndexReport:
    """Rebuild the whole index from the blobs and the catalog."""
    return _writer.reindex(archive.root, archive.catalog, archive.store, progress, procs)


def index_status(archive: Archive) -> dict:
    """Documents indexed, the catalog state the index reflects, and its size on disk."""
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
        "bookmark": {"rowid": state["rowid"], "seq": state["seq"]},
        "behind": {"messages": max(0, rowid - state["rowid"]), "changes": max(0, seq - state["seq"])},
        "bytes": size,
        "problems": archive.catalog.index_problem_count(),
    }
