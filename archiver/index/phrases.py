"""One page of a query holding phrases, checking positions only where the page needs them.

A phrase over very common words has tens of thousands of candidates (messages
holding every word); checking all their positions is what made such a query
take half a second at 100,000 messages.  :func:`phrase_page` takes the
candidates best-first by their words' BM25 (which is also the phrase's score,
as in Whoosh) or newest-first, checks them in rounds, and stops when the page
is full and no unchecked candidate could rank above its last hit: the page is
exactly what a full check would return.  When candidates stay unchecked, the
total is estimated from a sample of checked ones (``total_exact`` False).
Built on the posting readers of :mod:`archiver.index.fastmatch`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator
from itertools import chain, compress, repeat
from operator import add

from whoosh import query as wq
from whoosh.query.wrappers import ConstantScoreQuery, WeightingQuery
from whoosh.reading import SegmentReader

from archiver.index.fastmatch import (
    FastPhrase,
    _applies,
    _blocks_cache,
    _decided,
    _docs,
    _global_column,
    _Lazy,
    _PhraseScan,
    _scored_parts,
    _Scorer,
)

#: Check every candidate up front (exact total) when that costs less than about this many block reads.
CHECK_ALL_BLOCKS = 160
#: Candidates whose positions are checked to estimate the total when not every candidate was checked.
SAMPLE = 800
#: Documents ordered in the first round of a page (rounds grow 4x).
FIRST_ROUND = 256
#: Once a page has checked this many documents (or an eighth of the candidates), check all the rest at once:
#: hits are rare, and reading whole blocks costs less per document than reading a few values of each.
SWITCH_AFTER = 800


def _phrases(query: wq.Query) -> Iterator[FastPhrase]:
    if isinstance(query, FastPhrase):
        yield query
    elif isinstance(query, wq.CompoundQuery):
        for child in query.subqueries:
            yield from _phrases(child)
    elif isinstance(query, wq.AndNot):
        yield from _phrases(query.a)
        yield from _phrases(query.b)
    elif isinstance(query, wq.Not):
        yield from _phrases(query.query)
    elif isinstance(query, ConstantScoreQuery | WeightingQuery):
        yield from _phrases(query.child)


def has_phrase(query: wq.Query) -> bool:
    return next(_phrases(query), None) is not None


class _Segment:
    """One segment of a :func:`phrase_page` search: a superset of the matches and what is known of them."""

    def __init__(  # type: ignore[no-untyped-def]
        self, searcher, reader: SegmentReader, offset: int, query: wq.Query, restrict, relevance: bool
    ) -> None:
        self.reader, self.offset, self.query = reader, offset, query
        self.blocks = _blocks_cache(reader, cached=True)
        self.lazy = _Lazy()
        for phrase in _phrases(query):
            if _applies(phrase, reader):
                self.lazy.scans[id(phrase)] = _PhraseScan(reader, phrase, self.blocks)
        upper = _docs(query, reader, self.lazy)
        allowed = _docs(restrict, reader) if restrict is not None else None
        self.ok = upper is not None and (restrict is None or allowed is not None)
        if not self.ok:
            return
        if allowed is not None:
            upper = upper & allowed
        if reader.has_deletions():
            upper = upper - reader.deleted_docs_set
        elif not isinstance(upper, set) or any(upper is known for known in self.lazy.leaves.values()):
            upper = set(upper)  # (a remembered set: this one is changed below)
        self.upper: set[int] = upper  # type: ignore[assignment] # every match is in here
        scans = sorted((scan.candidates for scan in self.lazy.scans.values() if scan.candidates), key=len)
        # Documents whose phrases are still to be checked: those of ``upper`` that are some phrase's candidate.
        outside = upper.difference(scans[-1]) if scans else set(upper)  # (usually few: one phrase has most)
        for candidates in scans[:-1]:
            outside -= candidates
        self.unchecked = upper - outside if outside else set(upper)
        self.rejected: set[int] = set()  # checked: no match
        self.hits: dict[int, set[int]] = {key: set() for key in self.lazy.scans}  # phrase -> checked documents with it
        self.scorer = _Scorer(searcher, reader, list(_scored_parts(query)), self.blocks) if relevance else None

    def known(self) -> int:
        """Matches known for certain: not needing a check, or checked."""
        return len(self.upper) - len(self.unchecked) - len(self.rejected)

    def check_cost(self) -> int:
        """At most how many blocks checking every unchecked document would read."""
        cost, count = 0, len(self.unchecked)
        if count:
            for scan in self.lazy.scans.values():
                terms = {id(t): t for t in scan.terms}.values()
                cost += sum(min(len(term) - term.loaded(), count, len(scan.candidates)) for term in terms)
        return cost

    def decide(self, docnums: Iterable[int]) -> set[int]:
        """Those of ``docnums`` (local, from ``upper``) that match, checking their phrases where needed."""
        batch = set(docnums)
        todo = batch & self.unchecked
        if todo:
            for key, scan in self.lazy.scans.items():
                self.hits[key] |= scan.check(todo & scan.candidates)
            self.rejected |= todo - _decided(self.query, self.lazy, self.hits, todo)
            self.unchecked -= todo
        return batch - self.rejected

    def bounds(self, docnums: list[int]) -> list[float]:
        """Scores before the check: every candidate counted as holding its phrases (>= the score after)."""
        return self.scorer.scores(docnums, lambda phrase: self.lazy.scans[id(phrase)].candidates)  # type: ignore[union-attr]

    def scores(self, docnums: list[int]) -> list[float]:
        """Scores of checked documents."""
        return self.scorer.scores(docnums, lambda phrase: self.hits[id(phrase)])  # type: ignore[union-attr]

    def sample(self, size: int) -> list[int]:
        """About ``size`` unchecked documents, whole posting blocks spread evenly (those already read first)."""
        picked: list[int] = []
        unchecked = self.unchecked
        for scan in sorted(self.lazy.scans.values(), key=lambda s: -len(s.candidates)):
            anchor, candidates = scan.anchor, scan.candidates
            if anchor is None or not candidates or len(picked) >= size:
                continue
            taken = set(picked)
            read = [block for block in anchor._values]  # (blocks already read: free to check)
            for block in sorted(read)[:: max(1, len(read) * 100 // size)]:
                picked.extend(
                    d
                    for d in anchor.block_ids(block)
                    if d in unchecked and d in candidates and d not in taken and scan.is_loaded(d)
                )
                if len(picked) >= size:
                    return picked[:: max(1, len(picked) // size)]
            taken = set(picked)
            per_block = max(1.0, len(candidates) / len(anchor))
            count = min(len(anchor), math.ceil((size - len(picked)) / per_block))
            for step in range(count):
                block = anchor.block_ids((2 * step + 1) * len(anchor) // (2 * count))
                picked.extend(d for d in block if d in unchecked and d in candidates and d not in taken)
        return picked[:: max(1, len(picked) // size)]  # (whole blocks hold more than a small share: thinned)


def phrase_page(  # type: ignore[no-untyped-def]
    searcher, query: wq.Query, need: int, sort: str, restrict: wq.Query | None = None
) -> tuple[list[tuple[int, float]], int, bool] | None:
    """The ``need`` best (global docnum, score) matches of a query holding phrases, the total, total exact.

    Checking a phrase's positions is the costly part (a common pair of words
    has tens of thousands of candidates at 100,000 messages), so only what the
    page needs is checked: the documents that may match (the phrase's words
    all there, the rest of the query holding) are taken in the page's order,
    best BM25 first or newest first, and checked until the page is full and
    no unchecked document could rank above its last hit.  A phrase scores as
    its words' BM25 (as in Whoosh), so a document's score before its check
    bounds its score after it.  The page is exactly what checking every
    candidate would give.  When not every candidate was checked, the total
    is estimated from a sample of about :data:`SAMPLE` of them (whole posting
    blocks, spread evenly) and reported as not exact.  A phrase under a NOT
    counts as matching nothing for the superset and is checked like the
    others.  None: not for this path (no phrase, an unhandled query, no date
    column); the caller falls back.
    """
    if not has_phrase(query):
        return None
    relevance = sort != "date"
    dates = None if relevance else _global_column(searcher, "date")
    if not relevance and dates is None:
        return None
    segments: list[_Segment] = []
    for leaf, offset in searcher.leaf_searchers():
        reader = leaf.reader()
        if not isinstance(reader, SegmentReader):
            return None
        segment = _Segment(searcher, reader, offset, query, restrict, relevance)
        if not segment.ok:
            return None
        segments.append(segment)
    if sum(segment.check_cost() for segment in segments) <= CHECK_ALL_BLOCKS:
        for segment in segments:
            segment.decide(list(segment.unchecked))

    # Every document that may match, with its bound: score before the check (or its date).
    candidates: list[tuple[list[int], list[float]]] = []  # per segment: (local docnums, bounds)
    for segment in segments:
        local = sorted(segment.upper - segment.rejected if segment.rejected else segment.upper)
        if relevance:
            candidates.append((local, segment.bounds(local)))
        else:
            candidates.append((local, list(map(dates.__getitem__, map(add, local, repeat(segment.offset))))))  # type: ignore[union-attr]
    count = sum(len(local) for local, _ in candidates)
    unchecked = sum(len(segment.unchecked) for segment in segments)

    # Take documents in order of their bound, in growing rounds (about the ``size`` best bounds each).
    found: list[tuple[tuple[float, int], int, float]] = []  # (order key, docnum, score) of matches
    done, size, complete = 0, max(4 * need, FIRST_ROUND), False
    threshold: float | None = None
    sign = 1 if relevance else -1  # ties: lower docnum first by relevance, higher by date (as Whoosh)
    while not complete:
        threshold = None if size >= count else _threshold([b for _, b in candidates], size, count, threshold)
        order = []
        for number, ((local, bounds), segment) in enumerate(zip(candidates, segments, strict=True)):
            chosen = range(len(local))
            if threshold is not None:
                chosen = compress(chosen, map(threshold.__le__, bounds))  # type: ignore[assignment]
            order.extend((-bounds[i], sign * (local[i] + segment.offset), number, local[i]) for i in chosen)
        order.sort()
        position, batch = done, max(8, need // 2)
        while True:
            if position < len(order):
                limit: tuple[float, float] | None = order[position][:2]
            else:  # the rest of the documents have a bound below the threshold
                limit = None if threshold is None else (-threshold, math.inf)
            if limit is None or sum(1 for key, _, _ in found if key < limit) >= need:
                complete = True
                break
            if position >= len(order):
                break
            step = order[position : position + batch]
            position, batch = position + len(step), min(batch * 3 // 2, 512)
            _take(step, segments, relevance, found)
            checked = unchecked - sum(len(segment.unchecked) for segment in segments)
            expected = checked + (need - len(found)) * (checked + 2) / (len(found) + 1) if checked >= 100 else 0
            if min(SWITCH_AFTER, max(64, unchecked // 8)) < max(checked, expected) and checked < unchecked:
                for segment in segments:  # hits are rare (or the page deep): check the rest at once
                    segment.decide(list(segment.unchecked))
        done, size = position, size * 4
    found.sort()
    page = [(docnum, score) for _, docnum, score in found[:need]]

    # The total: exact when every candidate was checked (or cheap to), else estimated from a sample.
    if sum(segment.check_cost() for segment in segments) <= CHECK_ALL_BLOCKS:
        for segment in segments:
            segment.decide(list(segment.unchecked))
    pending = sum(len(segment.unchecked) for segment in segments)
    if not pending:
        return page, sum(segment.known() for segment in segments), True
    extrapolated = 0.0
    for segment in segments:
        share = len(segment.unchecked)
        picked = segment.sample(math.ceil(SAMPLE * share / pending)) if share else []
        if picked:
            before = segment.known()
            segment.decide(picked)
            extrapolated += (segment.known() - before) / len(picked) * len(segment.unchecked)
    known = sum(segment.known() for segment in segments)
    return page, _round_estimate(known + extrapolated, known), False


def _round_estimate(value: float, at_least: int) -> int:
    """An estimate to two significant digits, never below what is known."""
    if value >= 100:
        scale = 10 ** (int(math.log10(value)) - 1)
        value = round(value / scale) * scale
    return max(round(value), at_least)


def _threshold(bounds: list[list[float]], size: int, count: int, previous: float | None) -> float | None:
    """A bound that about ``size`` of the ``count`` documents reach, below ``previous`` (None: take them all).

    Guessed from an even sample of the bounds (a little low, so that the round
    holds at least ``size``); exact (``heapq.nlargest``) when the guess would
    not take more documents than the previous round.
    """
    step = max(1, count // 2048)
    sample = sorted(chain.from_iterable(b[::step] for b in bounds), reverse=True)
    at = size // step
    guess = sample[min(len(sample) - 1, at + at // 2 + 4)]
    if previous is None or guess < previous:
        return guess
    exact = heapq.nlargest(size, chain.from_iterable(bounds))[-1]
    return exact if exact < previous else None


def _take(step, segments: list[_Segment], relevance: bool, found) -> None:  # type: ignore[no-untyped-def]
    """Check one batch of documents (taken in order) and add the matches to ``found``."""
    per_segment: dict[int, dict[int, tuple[float, float]]] = {}
    for first, second, number, docnum in step:
        per_segment.setdefault(number, {})[docnum] = (first, second)
    for number, keys in per_segment.items():
        segment = segments[number]
        matches = sorted(segment.decide(keys))
        if not matches:
            continue
        if relevance:
            for docnum, score in zip(matches, segment.scores(matches), strict=True):
                found.append(((-score, docnum + segment.offset), docnum + segment.offset, score))
        else:
            for docnum in matches:
                found.append((keys[docnum], docnum + segment.offset, 0.0))  # type: ignore[arg-type]
