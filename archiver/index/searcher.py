"""Running a query: Whoosh hits → blob ids → catalog rows, with highlighted snippets.

The index stores nothing but blob ids (that keeps it small); what a result
shows comes from the catalog (date, sender, subject, folders) and the snippet
from the message itself, re-read for the page's hits only.
"""

from __future__ import annotations

import html
import random
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from whoosh import query as wq
from whoosh.index import EmptyIndexError
from whoosh.searching import Searcher

from archiver.catalog import Catalog
from archiver.errors import ArchiverError
from archiver.index.analysis import _stemmers, iter_terms
from archiver.index.documents import STATE_ID
from archiver.index.fastmatch import matching_docs, newest, rank
from archiver.index.phrases import phrase_page
from archiver.index.query import compile_query, parse
from archiver.index.visibility import Accounts, visible_set
from archiver.index.writer import SearchIndexError, index_root, open_live
from archiver.mail.textextract import ExtractLimits, extract
from archiver.store import BlobBackend

SORTS = ("relevance", "date")
SNIPPET_CHARS = 240
SNIPPET_SOURCE_BYTES = 256 * 1024
_SNIPPET_LIMITS = ExtractLimits(max_body_chars=60_000, attachments=False)


@dataclass(frozen=True)
class Hit:
    """One result: what a result list shows."""

    blob_id: str
    score: float
    date: str | None  # ISO 8601 from the Date header (catalog)
    sender: str | None
    subject: str | None
    snippet_html: str  # HTML-escaped text; matches wrapped in <mark>
    folders: tuple[tuple[str, str], ...]  # (account, folder) of every placement the viewer may see
    size: int = 0


@dataclass(frozen=True)
class SearchPage:
    """A page of results; ``total`` counts every match (not just this page)."""

    query: str
    total: int
    page: int
    page_size: int
    hits: tuple[Hit, ...]
    seconds: float
    total_exact: bool = True  # False: ``total`` is an estimate ("about N": phrases, huge date-sorted result sets)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def _highlight_terms(query: wq.Query) -> dict[str, set[str]]:
    """Terms worth marking in a body: per analysis ('en', 'fr', None) the indexed forms."""
    wanted: dict[str | None, set[str]] = {"en": set(), "fr": set(), None: set()}
    for field, text in query.all_terms(phrases=True):
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if not isinstance(text, str):
            continue
        if field == "text_en":
            wanted["en"].add(text)
        elif field == "text_fr":
            wanted["fr"].add(text)
        elif field in ("subject", "sender", "to", "cc", "filename"):
            wanted[None].add(text)
    return wanted  # type: ignore[return-value]


def snippet(text: str, wanted: dict, width: int = SNIPPET_CHARS) -> str:
    """An escaped excerpt of ``text`` around its densest cluster of matches, matches in <mark>."""
    spans: list[tuple[int, int]] = []
    checks = [(lang, terms) for lang, terms in wanted.items() if terms]
    if checks:
        for lang, terms in checks:
            for term, _, start, end in iter_terms(text, _stemmers.get(lang)):
                if term in terms:
                    spans.append((start, end))
        spans = sorted(set(spans))
    if not spans:
        excerpt = " ".join(text[: width * 2].split())[:width]
        return html.escape(excerpt) + ("…" if len(text) > width else "")
    best_start, best_count = spans[0][0], 0
    j = 0
    for i, (start, _) in enumerate(spans):  # sliding window: most matches within ``width`` chars
        while spans[j][0] < start - width // 2:
            j += 1
        if i - j + 1 > best_count:
            best_count, best_start = i - j + 1, spans[j][0]
    window_start = max(0, best_start - width // 4)
    space = text.rfind(" ", 0, window_start)
    window_start = 0 if window_start == 0 or space < 0 else space + 1
    window_end = min(len(text), window_start + width)
    pieces = []
    cursor = window_start
    for start, end in spans:
        if start < cursor or end > window_end:
            continue
        pieces.append(html.escape(text[cursor:start]))
        pieces.append(f"<mark>{html.escape(text[start:end])}</mark>")
        cursor = end
    pieces.append(html.escape(text[cursor:window_end]))
    body = re.sub(r"\s+", " ", "".join(pieces)).strip()
    return ("…" if window_start > 0 else "") + body + ("…" if window_end < len(text) else "")


_local = threading.local()


def _searcher(archive_root: Path) -> Searcher:
    """This thread's searcher of the live generation, reopened only when the index changed.

    Opening segment readers costs tens of milliseconds, more than most
    queries; Whoosh searchers are not shared between threads, hence per thread.
    """
    cache: dict[str, tuple[str, Searcher]] = _local.__dict__.setdefault("searchers", {})
    key = str(archive_root)
    try:
        live = (index_root(archive_root) / "CURRENT").read_text().strip()
    except FileNotFoundError:
        live = ""
    entry = cache.get(key)
    if entry is not None and entry[0] == live and entry[1].up_to_date():
        return entry[1]  # (not Searcher.refresh(): it reuses segment readers and misses new deletions)
    _forget(archive_root)
    ix = open_live(archive_root)
    if ix is None:
        raise SearchIndexError("the archive has no search index yet: run `archiver reindex` (or a backup)")
    searcher = ix.searcher()
    cache[key] = (live, searcher)
    return searcher


def _forget(archive_root: Path) -> None:
    entry = _local.__dict__.get("searchers", {}).pop(str(archive_root), None)
    if entry is not None:
        entry[1].close()


#: Above this many estimated matches a date-sorted search first looks at the newest documents only.
WINDOW_FROM = 20_000


def _page(results: object, start: int) -> list[tuple[str, float]]:
    return [(hit["blob_id"], float(hit.score or 0.0)) for hit in results[start:]]  # type: ignore[index]


def _collect(searcher: Searcher, query: wq.Query, need: int, sort: str, restrict: object) -> object:
    """Whoosh's top ``need`` hits, without the count Whoosh's ``search_page`` makes (we count with sets)."""
    if sort == "date":
        return searcher.search(query, limit=need, sortedby="date", reverse=True, filter=restrict, terms=False)
    return searcher.search(query, limit=need, filter=restrict, terms=False)


def _run(
    searcher: Searcher, compiled: wq.Query, page: int, page_size: int, sort: str, restrict: wq.Query | None
) -> tuple[list[tuple[str, float]], int, bool]:
    """(page of (blob id, score), total, total is exact).

    The matches are found with set operations over whole posting blocks
    and ranked by :func:`archiver.index.fastmatch.rank` (Whoosh's matcher
    tree makes Python calls per match, and counts every match a second time).
    Sorting by date takes the newest from the ``date`` column read once per
    searcher.  A query holding a phrase goes through
    :func:`archiver.index.phrases.phrase_page`, which checks the positions
    of only as many candidates as the page needs (the total may then be an
    estimate).  Whoosh's own search remains for queries the fast path does
    not handle, with this shortcut:

    Sorting by date makes Whoosh visit every match (a few microseconds each
    in Python), which for a word found in most of 100,000 messages is far
    more than a page is worth.  So when the query may match more than
    :data:`WINDOW_FROM` documents, it is first run on the newest documents
    only (a date range chosen from a sample of the date column to hold about
    four pages' worth).  If that window holds the whole requested page, the
    page is exact: every newer document was considered.  Otherwise the full
    search runs.
    """
    need = page * page_size
    start = need - page_size
    lazily = phrase_page(searcher, compiled, need, sort, restrict)  # phrases: check only what the page needs
    if lazily is not None:
        top, total, exact = lazily
        return [(searcher.stored_fields(docnum)["blob_id"], score) for docnum, score in top[start:]], total, exact
    allowed = matching_docs(searcher, restrict) if restrict is not None else None
    matched = matching_docs(searcher, compiled)
    if matched is not None and allowed is not None:
        matched &= allowed
    filter_ = allowed if allowed is not None else restrict
    if sort == "relevance" and matched is not None:
        top = rank(searcher, compiled, matched, need)[start:]
        return [(searcher.stored_fields(docnum)["blob_id"], score) for docnum, score in top], len(matched), True
    if sort == "date" and matched is not None:
        order = newest(searcher, matched, need)
        if order is not None:
            return [(searcher.stored_fields(docnum)["blob_id"], 0.0) for docnum in order[start:]], len(matched), True
    if sort == "date":
        estimate = len(matched) if matched is not None else compiled.estimate_size(searcher.reader())
        if estimate > WINDOW_FROM:
            cutoff = _recent_cutoff(searcher, min(0.5, 4 * need / estimate))
            if cutoff is not None:
                windowed = wq.And([compiled, wq.NumericRange("date", cutoff, None)])
                results = _collect(searcher, windowed, need, sort, filter_)
                if results.scored_length() >= need:  # type: ignore[attr-defined]
                    if matched is not None:
                        return _page(results, start), len(matched), True
                    return _page(results, start), max(estimate, len(results)), False  # type: ignore[arg-type]
    results = _collect(searcher, compiled, need, sort, filter_)
    total = len(matched) if matched is not None else len(results)  # type: ignore[arg-type]
    return _page(results, start), total, True


def _recent_cutoff(searcher: Searcher, fraction: float) -> int | None:
    """A date such that about ``fraction`` of the documents are newer (from a sample of the date column)."""
    sample = _date_samples.get(id(searcher))
    if sample is None:
        reader = searcher.reader()
        if not reader.has_column("date"):
            return None
        column = reader.column_reader("date")
        count = reader.doc_count_all()
        picks = random.Random(count).sample(range(count), min(count, 2000))
        sample = sorted(value for value in (column[n] for n in picks) if value)
        _date_samples.clear()  # one searcher per thread is live at a time: keep the latest only
        _date_samples[id(searcher)] = sample
    if len(sample) < 50:
        return None
    return sample[int(len(sample) * (1 - fraction))]  # minutes, like the ``date`` field


_date_samples: dict[int, list[int]] = {}


def _visible_folders(
    placements: Iterable[tuple[str, str, str, str | None]], visible: frozenset[str] | None
) -> tuple[tuple[str, str], ...]:
    """(account, folder) of the placements the viewer may see (None: all), sorted, once each."""
    return tuple(sorted({(a, f) for a, f, _, _ in placements if visible is None or a in visible}))


MAX_PAGE_SIZE = 1000
"""Hits per page at most: a page's hits are ranked, loaded and given snippets at once, so it is bounded
(time and memory per request); more results are on the next pages."""


def search(
    archive_root: Path,
    catalog: Catalog,
    store: BlobBackend,
    query: str,
    *,
    accounts: Accounts,
    page: int = 1,
    page_size: int = 20,
    sort: str = "relevance",
    snippets: bool = True,
) -> SearchPage:
    """One page of results for ``query`` (our syntax), newest first with ``sort="date"``.

    ``accounts`` says what the caller may see (see :mod:`archiver.index.visibility`):
    an empty collection finds nothing; the hits, their folders and the total
    count only what those accounts hold.
    """
    if sort not in SORTS:
        raise ArchiverError(f"unknown sort {sort!r}: use one of {', '.join(SORTS)}")
    if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ArchiverError(f"page must be >= 1 and page size between 1 and {MAX_PAGE_SIZE}")
    started = time.perf_counter()
    visible = visible_set(accounts)
    compiled = compile_query(parse(query), visible)
    if visible is not None and not visible:
        return SearchPage(query, 0, page, page_size, (), time.perf_counter() - started)
    restrict = None if visible is None else wq.Or([wq.Term("owner", name) for name in sorted(visible)])
    # Not Whoosh's ``mask=``: counting results under a mask is quadratic in whoosh 2.7.
    compiled = wq.AndNot(compiled, wq.Term("blob_id", STATE_ID))
    for attempt in range(3):  # a concurrent rebuild or merge may delete files we were about to open
        try:
            searcher = _searcher(archive_root)
            if visible is not None and "owner" not in searcher.schema:  # written before per-account fields
                raise SearchIndexError(
                    "the search index predates per-account search and is rebuilt by the next backup: "
                    "wait for it, or run `archiver reindex`"
                )
            found, total, exact = _run(searcher, compiled, page, page_size, sort, restrict)
            break
        except (OSError, EmptyIndexError):
            _forget(archive_root)
            if attempt == 2:
                raise
    ids = [blob_id for blob_id, _ in found]
    details = catalog.hit_details(ids)
    placements = catalog.placements_for_index(ids)
    wanted = _highlight_terms(compiled) if snippets else {}
    hits = []
    for blob_id, score in found:
        row = details.get(blob_id)
        text = ""
        if snippets:
            try:
                with store.open(blob_id) as reader:  # the text is near the top: never parse an 8 MB attachment
                    text = extract(reader.read(SNIPPET_SOURCE_BYTES), _SNIPPET_LIMITS).body
            except Exception:  # a snippet never fails a search (the hit still shows)
                text = ""
        hits.append(
            Hit(
                blob_id=blob_id,
                score=score,
                date=row["date"] if row else None,
                sender=row["sender"] if row else None,
                subject=row["subject"] if row else None,
                snippet_html=snippet(text, wanted) if snippets else "",
                folders=_visible_folders(placements.get(blob_id, ()), visible),
                size=row["size"] if row else 0,
            )
        )
    return SearchPage(query, total, page, page_size, tuple(hits), time.perf_counter() - started, exact)
