"""Queries answered with set operations over whole posting blocks instead of Whoosh's matcher tree.

Whoosh evaluates a query one document at a time through a tree of Python
matcher objects: a Python call per matching document to score it, a second
pass to count, and more per candidate for a phrase.  A common word matches a
tenth of a big archive, so such queries grew slow with the archive (the figures
are in docs/benchmarks.md).

Here a term's postings are read a block at a time (ids un-deltaed with
:func:`itertools.accumulate`, the block's values as one list: both in C):

* :func:`matching_docs`: the matching documents of a query as a set (AND,
  OR, NOT, ranges, wildcards and phrases become set operations);
* :func:`rank`: the best of them by BM25, Whoosh's own formula and defaults,
  computed over the matching documents only;
* :func:`newest`: the newest of them, from the ``date`` column read once;
* :class:`FastPhrase`: a phrase's candidates are a set intersection, their
  positions unpickled in one call per word, checked with set operations;
  it scores as Whoosh scores a phrase (the sum of its words' BM25);
* :mod:`archiver.index.phrases` builds on them for one page of a query
  holding phrases.

A block's ids and weights sit before its values in one pickle: they are read
by decompressing and unpickling only that head (a fifth of the block); the
values (positions) only for the blocks a phrase check needs, and of those
only the values asked for (:class:`_SplitValues`).  For phrases, a word's
decoded ids and weights and its BM25 contributions are kept between queries
(per segment reader, :data:`TERM_CACHE_BYTES` at most, least recently used
out): a common word's postings take tens of milliseconds to decode.

They rely on the whoosh3 codec's internals (``_read_data``, ``_nextoffset``,
the Positions value encoding…), pinned by the ``whoosh-reloaded`` version we
depend on, and the tests compare every one of them with Whoosh's own answer.
Anything they do not handle (another reader type, another query class) is
left to Whoosh: :func:`matching_docs` returns None and the caller falls back.
"""

from __future__ import annotations

import heapq
import re
import sys
import threading
import weakref
import zlib
from array import array
from bisect import bisect_left
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import accumulate, repeat
from operator import add, itemgetter, mul, neg, sub, truediv
from pickle import loads

from whoosh import matching
from whoosh import query as wq
from whoosh.codec.whoosh3 import LENGTHS_COLUMN, _lenfield
from whoosh.formats import Frequency, Positions
from whoosh.matching.binary import IntersectionMatcher
from whoosh.matching.wrappers import FilterMatcher
from whoosh.query.terms import MultiTerm
from whoosh.query.wrappers import ConstantScoreQuery, WeightingQuery
from whoosh.reading import SegmentReader, TermNotFound
from whoosh.util import make_binary_tree
from whoosh.util.numeric import byte_to_length

_INT_SIZE = 4  # whoosh Positions values: a packed uint (frequency), then the pickled list of position deltas

# -- reading posting blocks ----------------------------------------------------------------
# A block is ``zlib(pickle((id deltas, weights, values), 2))``.  Pickled with protocol 2,
# every value (bytes) is rebuilt through ``_codecs.encode``: the first value of a block
# starts with this global, which cannot occur inside the ints and floats before it.
_VALUES_MARK = b"(c_codecs\nencode\n"
_HEAD_BYTES_PER_POSTING = 14  # an id delta pickles to at most 5 bytes, a weight to 9


def _block_head(raw) -> tuple[Sequence[int], object]:  # type: ignore[no-untyped-def]
    """(ids or id deltas, weights) of a raw matcher's current block, without building its values."""
    if raw._fixedsize is None:  # variable-size values (positions): decompress and unpickle the head only
        data = raw._postfile.get(raw._dataoffset, raw._nextoffset - raw._dataoffset)
        if raw._compression:
            size = raw._blocklength * _HEAD_BYTES_PER_POSTING + 2 * len(_VALUES_MARK)
            data = zlib.decompressobj().decompress(data, size)
        at = data.find(_VALUES_MARK)
        if at > 0:
            try:
                ids, weights = loads(data[:at] + b"\x86.")
            except Exception:  # pragma: no cover - not the layout we expect: read it all below
                ids = ()
            if len(ids) == raw._blocklength:
                return ids, weights
    raw._read_data()
    return raw._data[0], raw._data[1]


def _iter_blocks(reader: SegmentReader, fieldname: str, btext: bytes) -> Iterator[tuple[object, list[int], object]]:
    """(raw matcher at the block, docnums, weights) for each block of one term's postings."""
    field = reader.schema[fieldname]
    try:
        raw = reader._terms.matcher(fieldname, btext, field.format)
    except TermNotFound:
        return
    while True:
        ids, weights = _block_head(raw)
        yield raw, (list(ids) if raw._byteids else list(accumulate(ids))), weights
        if raw._lastblock:
            return
        raw._goto(raw._nextoffset)


def _weights_list(weights: object, count: int) -> Sequence[float]:
    if weights is None or isinstance(weights, float | int):  # all 1.0, or all the same
        return [1.0 if weights is None else float(weights)] * count  # type: ignore[arg-type]
    return weights  # type: ignore[return-value]


_Fetch = Callable[[list[int]], list[float]]


class _TermIndex:
    """One term's postings in one segment, decoded once: ids, weights, block bounds (not the positions)."""

    def __init__(self, reader: SegmentReader, fieldname: str, btext: bytes) -> None:
        self.ids = array("I")
        self.weights = array("d")
        self.starts = [0]  # block i holds ids[starts[i]:starts[i + 1]]
        self.maxids: list[int] = []
        self.spans: list[tuple[int, int, int]] = []  # (offset, length, compression) of each block's data
        self.postfile = None
        for raw, ids, weights in _iter_blocks(reader, fieldname, btext):
            self.postfile = raw._postfile
            self.ids.extend(ids)
            self.weights.extend(_weights_list(weights, len(ids)))
            self.starts.append(len(self.ids))
            self.maxids.append(ids[-1])
            self.spans.append((raw._dataoffset, raw._nextoffset - raw._dataoffset, raw._compression))
        self.columns: dict[tuple[float, float, float], array | dict[int, float]] = {}
        self.nbytes = 12 * len(self.ids) + 100 * len(self.maxids) + 500

    def column(self, searcher, reader: SegmentReader, fieldname: str, btext: bytes, boost: float) -> _Fetch:  # type: ignore[no-untyped-def]
        """A function giving this term's BM25 contributions to a list of documents (0.0 where absent)."""
        gain = searcher.idf(fieldname, btext) * boost * (_K1 + 1)
        key = (gain, boost, _average_length(searcher, fieldname))
        found = self.columns.get(key)
        if found is None:
            norms = _doc_norms(searcher, reader, fieldname)
            denominators = map(add, self.weights, map(norms.__getitem__, self.ids))
            values = map(truediv, map(mul, self.weights, repeat(gain)), denominators)
            if 8 * len(self.ids) >= reader.doc_count_all():  # a common word: one float per document
                found = array("d", bytes(8 * reader.doc_count_all()))
                deque(map(found.__setitem__, self.ids, values), maxlen=0)  # scattered in C
                _account(8 * len(found))
            else:
                found = dict(zip(self.ids, values, strict=True))
                _account(100 * len(found))
            self.columns[key] = found
        if isinstance(found, dict):
            return lambda docnums, get=found.get: list(map(get, docnums, repeat(0.0)))
        return lambda docnums, get=found.__getitem__: list(map(get, docnums))


#: Decoded postings kept between queries (per segment, least recently used out), for phrases' words.
TERM_CACHE_BYTES = 64 * 2**20
_term_cache: OrderedDict[tuple[int, str, bytes], tuple[weakref.ref, _TermIndex]] = OrderedDict()
_term_cache_lock = threading.Lock()
_term_cache_bytes = [0]


def _account(nbytes: int) -> None:
    with _term_cache_lock:
        _term_cache_bytes[0] += nbytes


def _term_index(reader: SegmentReader, fieldname: str, btext: bytes, cached: bool) -> _TermIndex:
    """The decoded postings of a term in a segment, from the cache when ``cached``."""
    if not cached:
        return _TermIndex(reader, fieldname, btext)
    key = (id(reader), fieldname, btext)
    with _term_cache_lock:
        hit = _term_cache.get(key)
        if hit is not None and hit[0]() is reader:
            _term_cache.move_to_end(key)
            return hit[1]
    entry = _TermIndex(reader, fieldname, btext)
    with _term_cache_lock:
        for stale in [k for k, (ref, _) in _term_cache.items() if ref() is None or k == key]:
            _term_cache_bytes[0] -= _cache_size(_term_cache.pop(stale)[1])
        _term_cache[key] = (weakref.ref(reader), entry)
        _term_cache_bytes[0] += entry.nbytes
        while _term_cache_bytes[0] > TERM_CACHE_BYTES and len(_term_cache) > 1:
            _term_cache_bytes[0] -= _cache_size(_term_cache.popitem(last=False)[1][1])
    return entry


def _cache_size(entry: _TermIndex) -> int:
    return entry.nbytes + sum(8 * len(c) if isinstance(c, array) else 100 * len(c) for c in entry.columns.values())


class _TermBlocks:
    """One term's postings in one segment for one query: the decoded ids, positions read on demand."""

    def __init__(self, index: _TermIndex, cached: bool) -> None:
        self.index, self.cached = index, cached
        self.maxids = index.maxids
        self._values: dict[int, Sequence[bytes]] = {}
        self._all: dict[int, bytes] | None = None

    def __len__(self) -> int:
        return len(self.maxids)

    def block_ids(self, block: int) -> array:
        return self.index.ids[self.index.starts[block] : self.index.starts[block + 1]]

    def is_loaded(self, docnum: int) -> bool:
        return bisect_left(self.maxids, docnum) in self._values

    def loaded(self) -> int:
        return len(self._values)

    def _block_values(self, block: int, whole: bool = False) -> Sequence[bytes]:
        """A block's values: unpickled at once when most will be read (``whole``), else one at a time."""
        values = self._values.get(block)
        if whole and isinstance(values, _SplitValues):  # read a few at a time so far: now all of them
            values = self._values[block] = loads(values.data)[2]
        if values is None:
            offset, length, compression = self.index.spans[block]
            data = self.index.postfile.get(offset, length)  # type: ignore[attr-defined]
            data = zlib.decompress(data) if compression else data
            count = self.index.starts[block + 1] - self.index.starts[block]
            values = (None if whole else _SplitValues.of(data, count)) or loads(data)[2]
            self._values[block] = values
        return values

    def all_values(self) -> dict[int, bytes]:
        """{docnum: encoded value} of every posting (every block unpickled at once)."""
        if self._all is None:
            self._all = {}
            for block in range(len(self.maxids)):
                self._all.update(zip(self.block_ids(block), self._block_values(block, True), strict=True))
        return self._all

    def texts_of(self, docnums: Sequence[int]) -> list[str]:
        """The encoded values of postings ``docnums`` as latin-1 text (each one of this term's; sorted: fastest)."""
        out = []
        ids, starts = self.index.ids, self.index.starts
        low, high, get = 0, 0, None
        whole = 4 * len(docnums) >= len(ids)  # (reading a good share of the postings)
        for docnum in docnums:
            if high == low or docnum > ids[high - 1] or docnum < ids[low]:
                block = bisect_left(self.maxids, docnum)
                low, high = starts[block], starts[block + 1]
                values = self._block_values(block, whole)
                get = values.text if isinstance(values, _SplitValues) else _latin1_of(values)
            out.append(get(bisect_left(ids, docnum, low, high) - low))  # type: ignore[misc]
        return out


def _latin1_of(values: Sequence[bytes]) -> Callable[[int], str]:
    return lambda i: values[i].decode("latin-1")


def _after_put(data: bytes, at: int) -> int:
    """The position after the memo PUT opcode at ``at`` (BINPUT or LONG_BINPUT); -1 if there is none."""
    opcode = data[at : at + 1]
    return at + 2 if opcode == b"q" else at + 5 if opcode == b"r" else -1


# A value's piece: PUT REDUCE PUT GET(encode) X <length>, then its text and a PUT.
_VALUE_HEAD = re.compile(rb"(?:q.|r....)R(?:q.|r....)(?:h.|j....)X(....)", re.DOTALL).match


class _SplitValues(Sequence[bytes]):
    """A block's values read from its pickle one at a time (unpickling all of them is most of a block's cost).

    Pickled with protocol 2, the i-th value (bytes) is ``_codecs.encode(u, "latin1")``
    with ``u`` its text: ``GET(encode) X <len> <utf-8 of u> PUT GET("latin1") TUPLE2 PUT
    REDUCE PUT``.  ``GET("latin1") TUPLE2`` (bytes ``h``, index < 128, 0x86) cannot occur inside
    UTF-8 text, so splitting on it gives one piece per value, each parsed only when
    asked for and checked against this layout (``of`` returns None for anything else:
    the caller unpickles the block instead).
    """

    def __init__(self, data: bytes, first: str, pieces: list[bytes]) -> None:
        self.data, self._first, self._pieces = data, first, pieces

    @classmethod
    def of(cls, data: bytes, count: int) -> _SplitValues | None:
        at = data.find(_VALUES_MARK)
        if at < 0 or count < 2:
            return None
        at = _after_put(data, at + len(_VALUES_MARK))
        if at < 0 or data[at : at + 1] != b"X":
            return None
        size = int.from_bytes(data[at + 1 : at + 5], "little")
        first, at = data[at + 5 : at + 5 + size], _after_put(data, at + 5 + size)
        if at < 0 or data[at : at + 11] != b"X\x06\x00\x00\x00latin1" or data[at + 11 : at + 12] != b"q":
            return None
        index = data[at + 12]
        if index >= 0x80:
            return None
        pieces = data[at + 13 :].split(b"h" + bytes((index,)) + b"\x86")
        if len(pieces) != count or not pieces[0].startswith(b"\x86"):
            return None
        pieces[0] = pieces[0][1:]
        return cls(data, first.decode("utf-8"), pieces)

    def __len__(self) -> int:
        return len(self._pieces)

    def __getitem__(self, i: int) -> bytes:  # type: ignore[override]
        return self.text(i).encode("latin-1")

    def text(self, i: int) -> str:
        """The i-th value, decoded as latin-1 (as pickled)."""
        if i == 0:
            return self._first
        piece = self._pieces[i - 1]
        head = _VALUE_HEAD(piece)
        if head is None:
            raise ValueError("unexpected posting value layout")
        at = head.end()
        end = at + int.from_bytes(head.group(1), "little")
        if _after_put(piece, end) != len(piece):
            raise ValueError("unexpected posting value layout")
        return piece[at:end].decode("utf-8")

    def __iter__(self) -> Iterator[bytes]:
        return map(self.__getitem__, range(len(self)))


_PICKLE_BODY = itemgetter(slice(_INT_SIZE + 2, -1))  # a value is count, PROTO 2, the list's opcodes, STOP


def _bulk_deltas(values: list[bytes] | list[str]) -> list[list[int]]:
    """The position deltas of many postings (values as bytes, or as latin-1 text), unpickled in one call.

    Each value is ``pack_uint(count) + pickle.dumps(deltas, 2)``; the bodies
    of those pickles (each pushes one list) are spliced into one pickle of a
    list of lists, so the per-posting work is done in C.
    """
    text = bool(values) and isinstance(values[0], str)
    pieces = map(_PICKLE_BODY, values)
    body = "".join(pieces).encode("latin-1") if text else b"".join(pieces)  # type: ignore[arg-type]
    lists = loads(b"\x80\x02](" + body + b"e.")
    if len(lists) != len(values):  # pragma: no cover - only if Whoosh's Positions encoding changed
        encoded = [v.encode("latin-1") for v in values] if text else values  # type: ignore[union-attr]
        lists = [loads(value[_INT_SIZE:] + b".") for value in encoded]  # type: ignore[index,operator]
    return lists


# -- phrases -----------------------------------------------------------------------------
class _PhraseScan:
    """One phrase in one segment: its candidates (documents holding every word), positions checked on demand."""

    def __init__(self, reader: SegmentReader, phrase: FastPhrase, blocks: Callable[[str, bytes], _TermBlocks]) -> None:
        self.phrase = phrase
        field = reader.schema[phrase.fieldname]
        self.words = [w for w in phrase.words if w is not None]
        self.terms = [blocks(phrase.fieldname, field.to_bytes(word)) for word in self.words]
        self.candidates: set[int] = set()
        if self.words and all(len(term) for term in self.terms):
            distinct = sorted({id(t): t for t in self.terms}.values(), key=lambda t: len(t.index.ids))
            candidates = set(distinct[0].index.ids)  # the rarest word's documents, then the others'
            for term in distinct[1:]:
                candidates.intersection_update(term.index.ids)
            if reader.has_deletions():
                candidates -= reader.deleted_docs_set
            self.candidates = candidates
        self.anchor = min(self.terms, key=len) if self.terms else None  # the word with the fewest blocks

    def is_loaded(self, docnum: int) -> bool:
        return all(term.is_loaded(docnum) for term in self.terms)

    def check(self, docnums: Iterable[int]) -> set[int]:
        """Those of ``docnums`` (candidates) that contain the phrase."""
        order = sorted(docnums)
        if not order:
            return set()
        by_term: dict[int, list[list[int]]] = {}
        deltas = []
        for term in self.terms:
            found = by_term.get(id(term))
            if found is None and 4 * len(order) >= len(term.index.ids):  # a good share of the postings: all of them
                found = _bulk_deltas(list(map(term.all_values().__getitem__, order)))
            elif found is None:
                found = _bulk_deltas(term.texts_of(order))
            by_term[id(term)] = found
            deltas.append(found)
        hits: set[int] = set()
        if len(self.words) == 2:  # the usual phrase: one set per candidate
            previous = (-1).__add__
            for docnum, first, second in zip(order, deltas[0], deltas[1], strict=True):
                # isdisjoint stops at the first position that follows the first word (no second set is built)
                if not set(accumulate(first)).isdisjoint(map(previous, accumulate(second))):
                    hits.add(docnum)
            return hits
        for index, docnum in enumerate(order):
            starts = set(accumulate(deltas[0][index]))
            for offset in range(1, len(self.words)):
                starts.intersection_update(map(sub, accumulate(deltas[offset][index]), repeat(offset)))
                if not starts:
                    break
            if starts:
                hits.add(docnum)
        return hits


def _applies(phrase: wq.Phrase, reader: object) -> bool:
    return (
        isinstance(reader, SegmentReader)
        and phrase.slop == 1
        and phrase.fieldname in reader.schema
        and isinstance(reader.schema[phrase.fieldname].format, Positions)
    )


class FastPhrase(wq.Phrase):
    """An exact phrase (slop 1) in a positions field, scored as Whoosh scores a phrase (its words' BM25 sum)."""

    def matcher(self, searcher, context=None):  # type: ignore[no-untyped-def]
        reader = searcher.reader()
        hits = self.hits(reader)
        if hits is None:
            return super().matcher(searcher, context)
        if not hits:
            return matching.NullMatcher()
        # Whoosh's Phrase matcher is an intersection of its words' term matchers (its score: their
        # sum) keeping the documents with the words in a row: the same, with the documents known.
        field = searcher.schema[self.fieldname]
        terms = [wq.Term(self.fieldname, field.to_bytes(w)) for w in self.words if w is not None]
        matcher = FilterMatcher(
            make_binary_tree(IntersectionMatcher, [t.matcher(searcher, context) for t in terms]), frozenset(hits)
        )
        return matching.WrappingMatcher(matcher, boost=self.boost) if self.boost != 1.0 else matcher

    def hits(self, reader: object) -> set[int] | None:
        """Documents of one segment holding the phrase (deleted ones excluded); None: not handled here."""
        if not _applies(self, reader):
            return None
        # A search may ask more than once per segment: remember the answer on this query object.
        memo: dict[int, tuple[object, set[int]]] = self.__dict__.setdefault("_hits_memo", {})
        known = memo.get(id(reader))
        if known is not None and known[0] is reader:
            return known[1]
        scan = _PhraseScan(reader, self, _blocks_cache(reader, cached=False))  # type: ignore[arg-type]
        hits = scan.check(scan.candidates)
        memo[id(reader)] = (reader, hits)
        return hits


# -- matching ----------------------------------------------------------------------------
def _term_ids(reader: SegmentReader, fieldname: str, text: str | bytes) -> set[int]:
    """Document numbers of one term's postings in one segment (deleted ones included)."""
    field = reader.schema[fieldname]
    btext = text if isinstance(text, bytes) else field.to_bytes(text)
    ids: set[int] = set()
    for _, block, _ in _iter_blocks(reader, fieldname, btext):
        ids.update(block)
    return ids


class _Lazy:
    """How :func:`_docs` treats phrases and leaves for :func:`phrase_page` (one segment)."""

    def __init__(self) -> None:
        self.leaves: dict[int, set[int]] = {}  # id(leaf query) -> its documents
        self.scans: dict[int, _PhraseScan] = {}  # id(phrase) -> its scan


def _docs(query: wq.Query, reader: SegmentReader, lazy: _Lazy | None = None, positive: bool = True) -> set[int] | None:
    """The documents ``query`` matches in one segment, by set operations; None for a query not handled.

    With ``lazy``, phrases are not checked: a phrase counts as all its
    candidates where it says "match" (``positive``) and as nothing under a
    NOT, which gives a superset of the matches; leaves are remembered.
    """
    if lazy is not None and id(query) in lazy.leaves:
        return lazy.leaves[id(query)]
    found = _docs_uncached(query, reader, lazy, positive)
    compound = wq.CompoundQuery | wq.Not | wq.AndNot | ConstantScoreQuery | WeightingQuery | FastPhrase
    if lazy is not None and found is not None and not isinstance(query, compound):
        lazy.leaves[id(query)] = found
    return found


def _docs_uncached(query: wq.Query, reader: SegmentReader, lazy: _Lazy | None, positive: bool) -> set[int] | None:
    if isinstance(query, wq.Term):
        if query.fieldname not in reader.schema:
            return set()
        return _term_ids(reader, query.fieldname, query.text)
    if isinstance(query, wq.And | wq.Or):
        sets = []
        for child in query.subqueries:
            found = _docs(child, reader, lazy, positive)
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
        included, excluded = _docs(query.a, reader, lazy, positive), _docs(query.b, reader, lazy, not positive)
        if included is None or excluded is None:
            return None
        return included - excluded if excluded else included  # (nothing excluded: the same set, not a copy)
    if isinstance(query, wq.Not):
        inner = _docs(query.query, reader, lazy, not positive)
        return None if inner is None else set(range(reader.doc_count_all())) - inner
    if isinstance(query, wq.Every) and not query.fieldname:
        return set(range(reader.doc_count_all()))
    if query is wq.NullQuery or isinstance(query, type(wq.NullQuery)):
        return set()
    if isinstance(query, wq.NumericRange | MultiTerm):  # ranges, wildcards, prefixes: unions of terms
        if query.fieldname not in reader.schema:
            return set()
        if isinstance(query, wq.NumericRange):
            return _docs(query._compile_query(reader), reader)
        ids: set[int] = set()
        for btext in query._btexts(reader):
            ids |= _term_ids(reader, query.fieldname, btext)
        return ids
    if isinstance(query, ConstantScoreQuery | WeightingQuery):  # scoring wrappers: same documents
        return _docs(query.child, reader, lazy, positive)
    if isinstance(query, FastPhrase):
        if lazy is None:
            hits = query.hits(reader)
            return None if hits is None else set(hits)
        if not _applies(query, reader):
            return None
        scan = lazy.scans.get(id(query))
        if scan is None:
            return None
        return scan.candidates if positive else set()
    return None


def _decided(query: wq.Query, lazy: _Lazy, hits: dict[int, set[int]], batch: set[int]) -> set[int]:
    """The documents of ``batch`` that ``query`` matches, given the phrases' ``hits`` among them."""
    if isinstance(query, FastPhrase):
        return hits[id(query)] & batch
    if isinstance(query, wq.And):
        for child in query.subqueries:
            batch = _decided(child, lazy, hits, batch)
            if not batch:
                break
        return batch
    if isinstance(query, wq.Or):
        return set().union(*(_decided(child, lazy, hits, batch) for child in query.subqueries))
    if isinstance(query, wq.AndNot):
        included = _decided(query.a, lazy, hits, batch)
        return included - _decided(query.b, lazy, hits, included) if included else included
    if isinstance(query, wq.Not):
        return batch - _decided(query.query, lazy, hits, batch)
    if isinstance(query, ConstantScoreQuery | WeightingQuery):
        return _decided(query.child, lazy, hits, batch)
    return batch & lazy.leaves[id(query)]  # a leaf: _docs saw it


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


_norms_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


_averages_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _average_length(searcher, fieldname: str) -> float:  # type: ignore[no-untyped-def]
    """The field's average length over the index (Whoosh sums every segment's total on each call)."""
    per_searcher = _averages_cache.setdefault(searcher, {})
    found = per_searcher.get(fieldname)
    if found is None:
        found = per_searcher[fieldname] = searcher.avg_field_length(fieldname) or 1.0
    return found


def _doc_norms(searcher, reader: SegmentReader, fieldname: str) -> list[float]:  # type: ignore[no-untyped-def]
    """BM25's length norm ``K1 * (1 - B + B * length / average)`` of every document, once per segment reader."""
    average = _average_length(searcher, fieldname)
    per_reader = _norms_cache.setdefault(reader, {})
    found = per_reader.get((fieldname, average))
    if found is None:
        norms = [_K1 * ((1 - _B) + _B * (byte_to_length(b) if b else 0) / average) for b in range(256)]
        found = per_reader[fieldname, average] = list(map(norms.__getitem__, _length_bytes(reader, fieldname)))
    return found


def _tree_sum(columns: list[list[float]]) -> list[float]:
    """Element-wise sums, added in the order of Whoosh's binary tree of intersection matchers."""
    if len(columns) == 1:
        return columns[0]
    half = len(columns) // 2
    return list(map(add, _tree_sum(columns[:half]), _tree_sum(columns[half:])))


class _Scorer:
    """BM25 of a query's scored parts in one segment, for any documents (Whoosh's formula and defaults).

    Each word's contribution to every document holding it is computed a block
    at a time with C-level maps; a document's score is then the sum of its
    parts' contributions in the query's order, a phrase counting only where
    the caller says it matched.
    """

    def __init__(self, searcher, reader: SegmentReader, parts: list[wq.Query], blocks) -> None:  # type: ignore[no-untyped-def]
        """``blocks``: the cached postings of a phrase search (None: read each word's postings once, here)."""
        self._units: list[tuple[FastPhrase | None, list[_Fetch | None], float]] = []
        schema = searcher.schema
        self._words: dict[tuple[str, bytes, float], _Fetch | None] = {}
        for part in parts:
            if part.fieldname not in schema:
                continue
            field = schema[part.fieldname]
            if not field.scorable or not isinstance(field.format, Positions | Frequency):
                continue
            if isinstance(part, FastPhrase):
                if not _applies(part, reader):
                    continue
                words = [field.to_bytes(w) for w in part.words if w is not None]
                columns = [self._word(searcher, reader, part.fieldname, w, 1.0, blocks) for w in words]
                if columns:
                    self._units.append((part, columns, part.boost))  # type: ignore[arg-type]
                continue
            if isinstance(part, MultiTerm):  # a wildcard: Whoosh scores each word it expands to
                btexts = list(part._btexts(reader))
            else:
                btexts = [part.text if isinstance(part.text, bytes) else field.to_bytes(part.text)]
            for btext in btexts:
                column = self._word(searcher, reader, part.fieldname, btext, part.boost, blocks)
                self._units.append((None, [column], 1.0))

    def _word(self, searcher, reader, fieldname: str, btext: bytes, boost: float, blocks) -> _Fetch | None:  # type: ignore[no-untyped-def]
        """A function giving the word's contributions to a list of documents; None: no such word here."""
        key = (fieldname, btext, boost)
        if key in self._words:
            return self._words[key]
        fetch: _Fetch | None = None
        if blocks is not None:  # kept with the decoded postings
            term = blocks(fieldname, btext)
            fetch = term.index.column(searcher, reader, fieldname, btext, boost) if len(term) else None
        else:  # read once for this query, a block at a time
            norms = _doc_norms(searcher, reader, fieldname)
            gain = searcher.idf(fieldname, btext) * boost * (_K1 + 1)
            found: dict[int, float] = {}
            for _, ids, weights in _iter_blocks(reader, fieldname, btext):
                weights = _weights_list(weights, len(ids))
                denominators = map(add, weights, map(norms.__getitem__, ids))
                found.update(zip(ids, map(truediv, map(mul, weights, repeat(gain)), denominators), strict=True))
            if found:
                fetch = lambda docnums: list(map(found.get, docnums, repeat(0.0)))  # noqa: E731
        self._words[key] = fetch
        return fetch

    def scores(self, docnums: list[int], counted: Callable[[FastPhrase], set[int]]) -> list[float]:
        """Scores of ``docnums`` (local, sorted); a phrase adds its words' scores where ``counted(phrase)`` has them."""
        total: list[float] | None = None  # (0.0 + x == x: the first unit's values are the sums so far)
        for phrase, columns, boost in self._units:
            if any(column is None for column in columns) or (phrase is not None and not counted(phrase)):
                continue  # adds 0.0 to every document
            if phrase is not None and 8 * len(counted(phrase)) < len(docnums):  # few documents: add at their places
                if total is None:
                    total = [0.0] * len(docnums)
                chosen = sorted(counted(phrase).intersection(docnums))
                values = _tree_sum([column(chosen) for column in columns])  # type: ignore[misc]
                for docnum, value in zip(chosen, values, strict=True):
                    at = bisect_left(docnums, docnum)
                    total[at] += value * boost if boost != 1.0 else value
                continue
            values = _tree_sum([column(docnums) for column in columns])  # type: ignore[misc]
            if boost != 1.0:
                values = list(map(mul, values, repeat(boost)))
            if phrase is not None and not counted(phrase).issuperset(docnums):
                values = list(map(mul, values, map(counted(phrase).__contains__, docnums)))  # x * False == 0.0
            total = values if total is None else list(map(add, total, values))
        return [0.0] * len(docnums) if total is None else total


def _blocks_cache(reader: SegmentReader, cached: bool) -> Callable[[str, bytes], _TermBlocks]:
    """A query's view of terms' postings in one segment (decoded postings kept between queries if ``cached``)."""
    views: dict[tuple[str, bytes], _TermBlocks] = {}

    def blocks(fieldname: str, btext: bytes) -> _TermBlocks:
        found = views.get((fieldname, btext))
        if found is None:
            found = views[fieldname, btext] = _TermBlocks(_term_index(reader, fieldname, btext, cached), cached)
        return found

    return blocks


def _by_segment(searcher, docnums: Iterable[int]) -> Iterator[tuple[SegmentReader, int, list[int]]]:  # type: ignore[no-untyped-def]
    """(reader, offset, sorted local docnums) of each segment holding some of ``docnums`` (global)."""
    ordered = sorted(docnums)
    for leaf, offset in searcher.leaf_searchers():
        reader = leaf.reader()
        low, high = bisect_left(ordered, offset), bisect_left(ordered, offset + reader.doc_count_all())
        if high > low:
            yield reader, offset, list(map(sub, ordered[low:high], repeat(offset)))


def rank(searcher, query: wq.Query, matched: set[int], need: int) -> list[tuple[int, float]]:  # type: ignore[no-untyped-def]
    """The ``need`` best (global docnum, score) of ``matched``, best first (ties: lower docnum first).

    The score is BM25 (Whoosh's formula and defaults: idf over the whole
    index, B=0.75, K1=1.2) summed over the query's positive words in text
    fields, a phrase scoring as the sum of its words (as Whoosh's phrase
    matcher does) where it matched; field conditions (folders, flags,
    dates, sizes) filter without scoring.  Whoosh scores every match through
    a tree of matcher objects; here each word's postings are read a
    block at a time and scored with C-level maps.
    """
    parts = list(_scored_parts(query))
    if not parts:  # nothing scores (a folder, a flag, a date range…): Whoosh's order, lowest docnum first
        return [(docnum, 0.0) for docnum in heapq.nsmallest(need, matched)]
    keys: list[tuple[float, int]] = []
    for reader, offset, local in _by_segment(searcher, matched):
        scorer = _Scorer(searcher, reader, parts, None)
        scores = scorer.scores(local, lambda phrase, reader=reader: phrase.hits(reader) or set())  # type: ignore[misc]
        keys.extend(zip(map(neg, scores), map(add, local, repeat(offset)), strict=False))
    return [(docnum, -negated) for negated, docnum in heapq.nsmallest(need, keys)]


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
