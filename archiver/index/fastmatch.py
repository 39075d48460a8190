"""Queries answered with set operations over whole posting blocks instead of Whoosh's matcher tree.

Whoosh evaluates a query one document at a time through a tree of Python
matcher objects: ~10 µs per matching document to score it, a second pass to
count, and ~100 µs per candidate for a phrase.  At 100,000 messages a common
word matches 10,000 of them, so every such query took 100 ms to seconds.

Here a term's postings are read a block at a time (ids un-deltaed with
:func:`itertools.accumulate`, the block's values as one list: both in C):

* :func:`matching_docs`: the matching documents of a query as a set (AND,
  OR, NOT, ranges, wildcards and phrases become set operations);
* :func:`rank`: the best of them by BM25, Whoosh's own formula and defaults,
  computed over the matching documents only;
* :func:`newest`: the newest of them, from the ``date`` column read once;
* :class:`FastPhrase`: a phrase's candidates are a set intersection, their
  positions unpickled in one call per word, checked with set operations.

They rely on the whoosh3 codec's internals (``_read_data``, ``_nextoffset``,
the Positions value encoding…), pinned by the ``whoosh-reloaded`` version we
depend on, and the tests compare every one of them with Whoosh's own answer.
Anything they do not handle (another reader type, another query class) is
left to Whoosh: :func:`matching_docs` returns None and the caller falls back.
"""

from __future__ import annotations

import heapq
import math
import sys
import weakref
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from itertools import accumulate, repeat
from operator import itemgetter, sub
from pickle import loads

from whoosh import matching
from whoosh import query as wq
from whoosh.codec.whoosh3 import LENGTHS_COLUMN, _lenfield
from whoosh.formats import Frequency, Positions
from whoosh.query.terms import MultiTerm
from whoosh.query.wrappers import ConstantScoreQuery, WeightingQuery
from whoosh.reading import SegmentReader, TermNotFound
from whoosh.util.numeric import byte_to_length

_INT_SIZE = 4  # whoosh Positions values: a packed uint (frequency), then the pickled list of position deltas


def read_postings(reader: SegmentReader, fieldname: str, text: str) -> dict[int, bytes] | None:
    """{docnum: encoded value} of one term in one segment (deleted documents included), None if absent."""
    field = reader.schema[fieldname]
    try:
        raw = reader._terms.matcher(fieldname, field.to_bytes(text), field.format)
    except TermNotFound:
        return None
    postings: dict[int, bytes] = {}
    while True:
        raw._read_data()
        ids = raw._data[0]
        if not raw._byteids:
            ids = accumulate(ids)
        raw._read_values()
        postings.update(zip(ids, raw._values, strict=False))
        if raw._lastblock:
            return postings
        raw._goto(raw._nextoffset)


_PICKLE_BODY = itemgetter(slice(_INT_SIZE + 2, -1))  # a value is count, PROTO 2, the list's opcodes, STOP


def _bulk_deltas(values: list[bytes]) -> list[list[int]]:
    """The position deltas of many postings, unpickled in one call.

    Each value is ``pack_uint(count) + pickle.dumps(deltas, 2)``; the bodies
    of those pickles (each pushes one list) are spliced into one pickle of a
    list of lists, so the per-posting work is done in C.
    """
    lists = loads(b"\x80\x02](" + b"".join(map(_PICKLE_BODY, values)) + b"e.")
    if len(lists) != len(values):  # pragma: no cover - only if Whoosh's Positions encoding changed
        lists = [loads(value[_INT_SIZE:] + b".") for value in values]
    return lists


class _SortedListMatcher(matching.ListMatcher):
    """A list matcher with a binary-search ``skip_to`` (Whoosh's walks the list)."""

    def skip_to(self, id: int) -> None:
        if not self.is_active():
            raise matching.ReadTooFar
        if id > self._ids[self._i]:
            self._i = bisect_left(self._ids, id, self._i)

    def copy(self) -> _SortedListMatcher:
        return _SortedListMatcher(list(self._ids), list(self._weights), position=self._i)


class FastPhrase(wq.Phrase):
    """An exact phrase (slop 1) in a positions field; scored by phrase frequency, like a term."""

    def matcher(self, searcher, context=None):  # type: ignore[no-untyped-def]
        reader = searcher.reader()
        hits = self.hits(reader)
        if hits is None:
            return super().matcher(searcher, context)
        if not hits:
            return matching.NullMatcher()
        ids = sorted(hits)
        # BM25-like saturation of the phrase frequency, times the phrase's idf in this segment.
        idf = math.log(1.0 + reader.doc_count_all() / len(ids)) * self.boost
        weights = [idf * hits[d] * 2.2 / (hits[d] + 1.2) for d in ids]
        return _SortedListMatcher(ids, weights)

    def hits(self, reader: object) -> dict[int, int] | None:
        """{docnum: phrase frequency} in one segment (deleted documents excluded); None: not handled here."""
        if not isinstance(reader, SegmentReader) or self.slop != 1 or self.fieldname not in reader.schema.names():
            return None
        # A search asks twice per segment (to count, then to rank): remember the answer on this query object.
        memo: dict[int, tuple[object, dict[int, int] | None]] = self.__dict__.setdefault("_hits_memo", {})
        known = memo.get(id(reader))
        if known is not None and known[0] is reader:
            return known[1]
        hits = self._hits(reader)
        memo[id(reader)] = (reader, hits)
        return hits

    def _hits(self, reader: SegmentReader) -> dict[int, int] | None:
        if not isinstance(reader.schema[self.fieldname].format, Positions):
            return None
        words = [w for w in self.words if w is not None]
        if not words:
            return {}
        postings = []
        for word in words:
            found = read_postings(reader, self.fieldname, word)
            if not found:
                return {}
            postings.append(found)
        # Smallest posting list first: it bounds the candidates and the intersection work.
        ordered = sorted(postings, key=len)
        candidates = set(ordered[0])
        for other in ordered[1:]:
            candidates.intersection_update(other)
            if not candidates:
                return {}
        if reader.has_deletions():
            candidates -= reader.deleted_docs_set
        order = list(candidates)
        deltas = [_bulk_deltas(list(map(found.__getitem__, order))) for found in postings]
        hits: dict[int, int] = {}
        if len(words) == 2:  # the usual phrase: one set per candidate
            previous = (-1).__add__
            for docnum, first, second in zip(order, deltas[0], deltas[1], strict=True):
                starts = set(accumulate(first))
                starts.intersection_update(map(previous, accumulate(second)))
                if starts:
                    hits[docnum] = len(starts)
            return hits
        for index, docnum in enumerate(order):
            starts = set(accumulate(deltas[0][index]))
            for offset in range(1, len(words)):
                starts.intersection_update(map(sub, accumulate(deltas[offset][index]), repeat(offset)))
                if not starts:
                    break
            if starts:
                hits[docnum] = len(starts)
        return hits


def _term_ids(reader: SegmentReader, fieldname: str, text: str | bytes) -> set[int]:
    """Document numbers of one term's postings in one segment (deleted ones included)."""
    field = reader.schema[fieldname]
    btext = text if isinstance(text, bytes) else field.to_bytes(text)
    try:
        raw = reader._terms.matcher(fieldname, btext, field.format)
    except TermNotFound:
        return set()
    ids: set[int] = set()
    while True:
        raw._read_data()
        block = raw._data[0]
        ids.update(block if raw._byteids else accumulate(block))
        if raw._lastblock:
            return ids
        raw._goto(raw._nextoffset)


def _docs(query: wq.Query, reader: SegmentReader) -> set[int] | None:
    """The documents ``query`` matches in one segment, by set operations; None for a query not handled."""
    if isinstance(query, wq.Term):
        if query.fieldname not in reader.schema.names():
            return set()
        return _term_ids(reader, query.fieldname, query.text)
    if isinstance(query, wq.And | wq.Or):
        sets = []
        for child in query.subqueries:
            found = _docs(child, reader)
            if found is None:
                return None
            sets.append(found)
        if not sets:
            return set()
        if isinstance(query, wq.Or):
            return set().union(*sets)
        sets.sort(key=len)
        return sets[0].intersection(*sets[1:])
    if isinstance(query, wq.AndNot):
        positive, negative = _docs(query.a, reader), _docs(query.b, reader)
        return None if positive is None or negative is None else positive - negative
    if isinstance(query, wq.Not):
        inner = _docs(query.query, reader)
        return None if inner is None else set(range(reader.doc_count_all())) - inner
    if isinstance(query, wq.Every) and not query.fieldname:
        return set(range(reader.doc_count_all()))
    if query is wq.NullQuery or isinstance(query, type(wq.NullQuery)):
        return set()
    if isinstance(query, wq.NumericRange | MultiTerm):  # ranges, wildcards, prefixes: unions of terms
        if query.fieldname not in reader.schema.names():
            return set()
        if isinstance(query, wq.NumericRange):
            return _docs(query._compile_query(reader), reader)
        ids: set[int] = set()
        for btext in query._btexts(reader):
            ids |= _term_ids(reader, query.fieldname, btext)
        return ids
    if isinstance(query, ConstantScoreQuery | WeightingQuery):  # scoring wrappers: same documents
        return _docs(query.child, reader)
    if isinstance(query, FastPhrase):
        hits = query.hits(reader)
        return None if hits is None else set(hits)
    return None


def matching_docs(searcher, query: wq.Query) -> set[int] | None:  # type: ignore[no-untyped-def]
    """Global document numbers ``query`` matches (deleted documents excluded); None if not computable here.

    Counting the matches of a page's query is what Whoosh's collectors do one
    document at a time through generator chains (the second pass of every
    ranked search, after the scoring pass); these sets are built in C.
    """
    result: set[int] = set()
    for leaf, offset in searcher.leaf_searchers():
        reader = leaf.reader()
        if not isinstance(reader, SegmentReader):
            return None
        found = _docs(query, reader)
        if found is None:
            return None
        if reader.has_deletions():
            found -= reader.deleted_docs_set
        result.update(found if offset == 0 else (docnum + offset for docnum in found))
    return result


# -- ranking -----------------------------------------------------------------------------
_B, _K1 = 0.75, 1.2  # Whoosh's BM25F defaults
_length_bytes_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _scored_parts(query: wq.Query) -> Iterator[wq.Query]:
    """The leaves that give a document its relevance: positive terms and phrases of scorable text fields."""
    if isinstance(query, wq.Term | FastPhrase | MultiTerm):  # a wildcard scores as the words it expands to
        yield query
    elif isinstance(query, wq.And | wq.Or):
        for child in query.subqueries:
            yield from _scored_parts(child)
    elif isinstance(query, wq.AndNot):
        yield from _scored_parts(query.a)
    elif isinstance(query, ConstantScoreQuery | WeightingQuery):
        yield from _scored_parts(query.child)


def _length_bytes(reader: SegmentReader, fieldname: str) -> bytes:
    """One byte per document: Whoosh's compressed field length (0: none), read once per segment reader."""
    per_reader = _length_bytes_cache.setdefault(reader, {})
    found = per_reader.get(fieldname)
    if found is None:
        count = reader.doc_count_all()
        column = reader._perdoc._cached_reader(_lenfield(fieldname), LENGTHS_COLUMN)
        if column is None:
            found = bytes(count)
        elif getattr(column, "_fixedlen", None) == 1:  # one read; documents past the end have length 0
            found = column._dbfile.get(column._basepos, column._count)
            found += bytes(count - len(found))
        else:
            found = bytes(column)
        per_reader[fieldname] = found
    return found


def _term_weights(reader: SegmentReader, fieldname: str, btext: bytes) -> Iterator[tuple[int, float]]:
    field = reader.schema[fieldname]
    try:
        raw = reader._terms.matcher(fieldname, btext, field.format)
    except TermNotFound:
        return
    while True:
        raw._read_data()
        ids, weights = raw._data[0], raw._data[1]
        if not raw._byteids:
            ids = accumulate(ids)
        if weights is None or isinstance(weights, float):
            weights = repeat(1.0 if weights is None else weights)
        yield from zip(ids, weights, strict=False)
        if raw._lastblock:
            return
        raw._goto(raw._nextoffset)


def rank(searcher, query: wq.Query, matched: set[int], need: int) -> list[tuple[int, float]]:  # type: ignore[no-untyped-def]
    """The ``need`` best (global docnum, score) of ``matched``, best first (ties: lower docnum first).

    The score is BM25 (Whoosh's formula and defaults: idf over the whole
    index, B=0.75, K1=1.2) summed over the query's positive words in text
    fields, plus a phrase's own weight; field conditions (folders, flags,
    dates, sizes) filter without scoring.  Whoosh scores every match through
    a tree of matchers (~10 µs each); here each word's postings are read a
    block at a time and only matched documents are scored.
    """
    parts = list(_scored_parts(query))
    if not parts:  # nothing scores (a folder, a flag, a date range…): Whoosh's order, lowest docnum first
        return [(docnum, 0.0) for docnum in heapq.nsmallest(need, matched)]
    scores = dict.fromkeys(matched, 0.0)
    if scores:
        schema = searcher.schema
        for leaf, offset in searcher.leaf_searchers():
            reader = leaf.reader()
            for part in parts:
                if isinstance(part, FastPhrase):
                    hits = part.hits(reader) or {}
                    if hits:
                        idf = math.log(1.0 + reader.doc_count_all() / len(hits)) * part.boost
                        for docnum, freq in hits.items():
                            if docnum + offset in scores:
                                scores[docnum + offset] += idf * freq * 2.2 / (freq + 1.2)
                    continue
                field = schema[part.fieldname] if part.fieldname in schema.names() else None
                if field is None or not field.scorable or not isinstance(field.format, Positions | Frequency):
                    continue
                if isinstance(part, MultiTerm):  # a wildcard: Whoosh scores each word it expands to
                    btexts = list(part._btexts(reader))
                else:
                    btexts = [part.text if isinstance(part.text, bytes) else field.to_bytes(part.text)]
                average = searcher.avg_field_length(part.fieldname) or 1.0
                norms = [_K1 * ((1 - _B) + _B * (byte_to_length(b) if b else 0) / average) for b in range(256)]
                lengths = _length_bytes(reader, part.fieldname)
                for btext in btexts:
                    gain = searcher.idf(part.fieldname, btext) * part.boost * (_K1 + 1)
                    for docnum, weight in _term_weights(reader, part.fieldname, btext):
                        key = docnum + offset
                        if key in scores:
                            scores[key] += gain * weight / (weight + norms[lengths[docnum]])
    return heapq.nsmallest(need, scores.items(), key=lambda item: (-item[1], item[0]))


_columns_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _global_column(searcher, fieldname: str) -> Sequence[int] | None:  # type: ignore[no-untyped-def]
    """A numeric column's values for every global docnum (0 where missing), read once per searcher."""
    per_searcher = _columns_cache.setdefault(searcher, {})
    if fieldname in per_searcher:
        return per_searcher[fieldname]
    values = array("Q")
    for leaf, offset in searcher.leaf_searchers():
        reader = leaf.reader()
        count = reader.doc_count_all()
        if len(values) != offset:
            per_searcher[fieldname] = None
            return None
        if not reader.has_column(fieldname):  # e.g. a segment holding only the bookmark document
            values.extend(repeat(0, count))
            continue
        column = reader.column_reader(fieldname, translate=False)  # sortable integers: same order
        typecode = getattr(column, "_typecode", None)
        if typecode is None or array(typecode).itemsize != column._fixedlen or typecode not in "BHILQ":
            per_searcher[fieldname] = None
            return None
        segment = array(typecode, column._dbfile.get(column._basepos, column._count * column._fixedlen))
        if sys.byteorder == "little":  # Whoosh packs column numbers big-endian
            segment.byteswap()
        values.extend(iter(segment))
        values.extend(repeat(column._default, count - len(segment)))
    per_searcher[fieldname] = values
    return values


def newest(searcher, matched: set[int], need: int) -> list[int] | None:  # type: ignore[no-untyped-def]
    """The ``need`` newest of ``matched`` by the ``date`` column (ties: higher docnum first), as Whoosh sorts."""
    dates = _global_column(searcher, "date")
    if dates is None:
        return None
    return heapq.nlargest(need, matched, key=lambda docnum: (dates[docnum], docnum))
