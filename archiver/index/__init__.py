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
    compact(archive, *, memory_mb, max_seconds=None, full=False) -> CompactReport
        Merge segments by the size-tiered policy of ``compaction`` (updates never merge), one
        atomic step at a time, within ``memory_mb``, stopping between steps after ``max_seconds``.
    index_status(archive) -> dict   documents, segments, bookmark, size on disk

Query syntax: see :mod:`archiver.index.query` and docs/search.md.  Layout:
``analysis`` (tokenizer), ``documents`` (schema, one blob → one document),
``values`` (how field values are spelt, shared by documents and queries),
``query`` (syntax → Whoosh query), ``visibility`` (who sees what), ``writer`` (incremental and full builds,
on-disk generations), ``parallel`` (full builds on both cores), ``live`` (opening
the live generation for reading), ``searcher`` (results), ``readers`` (the searchers a
process keeps), ``snippets`` (highlighted excerpts and their caches, only when asked),
``hint`` (is the index up to date, without Whoosh), ``compaction`` (merging segments,
bounded, outside the updates), ``generations`` (the directories on disk and the writers'
lock), ``api`` (the functions above), and
the modules that make Whoosh fast enough at
100,000 messages: ``fastmatch`` (phrases, counting, ranking and date order
with set operations over whole posting blocks), ``fastwrite`` (the hot
spots of Whoosh's writer, byte-identical output), ``mapped`` (segment files
read in place, not copied) and ``lean_import`` (Whoosh imported without what a
search never uses).  A search imports none of the indexing modules
(``tests/unit/test_search_startup.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from archiver.index.lean_import import install

install()  # before any module of the package imports Whoosh (see archiver.index.lean_import)

if TYPE_CHECKING:
    from archiver.index.api import compact, index_status, reindex, search, update_index
    from archiver.index.compaction import CompactReport
    from archiver.index.live import SearchIndexError
    from archiver.index.query import QuerySyntaxError
    from archiver.index.searcher import Hit, SearchPage
    from archiver.index.visibility import ALL_ACCOUNTS, Accounts
    from archiver.index.writer import IndexReport, ProgressFn

# Loaded on first use: ``archiver.index.hint`` (asked by every backup run) must not import Whoosh.
_PUBLIC = {
    "search": "api",
    "update_index": "api",
    "reindex": "api",
    "index_status": "api",
    "compact": "api",
    "CompactReport": "compaction",
    "QuerySyntaxError": "query",
    "Hit": "searcher",
    "SearchPage": "searcher",
    "ALL_ACCOUNTS": "visibility",
    "Accounts": "visibility",
    "IndexReport": "writer",
    "ProgressFn": "writer",
    "SearchIndexError": "live",
}

__all__ = [  # noqa: RUF022 (the order of _PUBLIC)
    "search",
    "update_index",
    "reindex",
    "index_status",
    "compact",
    "CompactReport",
    "QuerySyntaxError",
    "Hit",
    "SearchPage",
    "ALL_ACCOUNTS",
    "Accounts",
    "IndexReport",
    "ProgressFn",
    "SearchIndexError",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
