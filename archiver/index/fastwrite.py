"""Two shortcuts in Whoosh's indexing path, each producing byte-identical segments.

A full reindex spends most of its time in Whoosh's pure-Python writer, per
token and per posting.  Measured on generated mail (``bench/search.py``):

* :class:`MailPositions`: the ``Positions`` format of the text fields, fed by
  :func:`archiver.index.analysis.term_positions` directly instead of through
  Whoosh's token objects and generator chain (one Python hop per token less),
  with the position deltas computed in C.  Same encoded values.
* :class:`FastSegmentWriter`: when a segment is flushed, Whoosh looks up the
  document's field length for every posting (a column read, several µs each,
  ~220 per message).  Here each field's length column is read once into a
  list.  Same lengths, same block statistics.
"""

from __future__ import annotations

from collections.abc import Iterator
from operator import sub
from pickle import dumps

from whoosh.codec.whoosh3 import LENGTHS_COLUMN, _lenfield
from whoosh.formats import Positions
from whoosh.system import pack_uint
from whoosh.util.numeric import byte_to_length
from whoosh.writing import SegmentWriter

from archiver.index.analysis import MailTokenizer, term_positions

_LENGTH_OF_BYTE = [None] + [byte_to_length(b) for b in range(1, 256)]


class MailPositions(Positions):
    """Whoosh's ``Positions`` format, with a fast path for :class:`MailTokenizer` fields."""

    def word_values(self, value, analyzer, **kwargs) -> Iterator[tuple[str, int, float, bytes]]:  # type: ignore[no-untyped-def]
        if not isinstance(analyzer, MailTokenizer) or kwargs.get("mode", "index") != "index":
            yield from super().word_values(value, analyzer, **kwargs)
            return
        boost = self.field_boost
        for word, poslist in term_positions(value, analyzer._stem).items():
            deltas = poslist if len(poslist) == 1 else list(map(sub, poslist, [0, *poslist[:-1]]))
            yield word, len(poslist), len(poslist) * boost, pack_uint(len(deltas)) + dumps(deltas, 2)


class _ColumnLengths:
    """``doc_field_length`` from whole length columns read once (Whoosh reads one byte per call)."""

    def __init__(self, perdoc) -> None:  # type: ignore[no-untyped-def]
        self._perdoc = perdoc
        self._columns: dict[str, list | None] = {}

    def doc_field_length(self, docnum: int, fieldname: str, default: int = 0) -> int | None:
        column = self._columns.get(fieldname, False)
        if column is False:
            reader = self._perdoc._cached_reader(_lenfield(fieldname), LENGTHS_COLUMN)
            column = None if reader is None else [_LENGTH_OF_BYTE[b] for b in reader]
            self._columns[fieldname] = column
        if column is None:
            return default
        return column[docnum]


class FastSegmentWriter(SegmentWriter):
    """Whoosh's segment writer with the length lookups of :class:`_ColumnLengths`."""

    def _flush_segment(self) -> None:
        self.perdocwriter.close()
        perdoc = self.per_document_reader() if self.codec.length_stats else None
        lengths = _ColumnLengths(perdoc) if perdoc is not None else None
        self.fieldwriter.add_postings(self.schema, lengths, self.pool.iter_postings())
        self.fieldwriter.close()
        if perdoc is not None:
            perdoc.close()
