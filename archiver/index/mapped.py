"""Segment files read where they are mapped, not copied: opening a searcher costs the same at any index size.

A Whoosh segment is one compound file, memory-mapped whole; each file inside
it (terms, postings, columns…) is handed to the readers as a
``BufferFile`` over a slice of the map.  ``BufferFile`` wraps that slice in an
``io.BytesIO``, which *copies* it: opening a searcher read every terms and
postings file of every segment into private memory (the whole index, tens of
MB at 10,000 messages), so a cold search paid for the index's size, not for
the query, and every open searcher held a copy of the index.

:class:`MappedFile` keeps the same interface (``read``, ``seek``, ``tell``,
``readline``, ``read_pickle``; ``get`` and friends already slice the map) with
a position of its own over the mapped slice: a read copies only the bytes it
returns.  :func:`read_segments_in_place` makes Whoosh's compound storage hand
out these instead; the answers do not change (the tests compare them with
Whoosh's own), only what is read.  It relies on ``whoosh.filedb.compound``
naming ``BufferFile`` as a module global, pinned by the ``whoosh-reloaded``
version we depend on.
"""

from __future__ import annotations

import os
import pickle
from io import BytesIO
from typing import Any

from whoosh.filedb import compound
from whoosh.filedb.structfile import BufferFile

#: Bytes copied to unpickle a block's header (Whoosh's are a few hundred): a larger pickle retries with more.
_PICKLE_WINDOW = 1024


class MappedFile(BufferFile):
    """A file inside a mapped segment, read in place (see the module docstring)."""

    def __init__(self, buf: memoryview, name: str | None = None, onclose: Any = None) -> None:
        # Not BufferFile.__init__: that is where the copy is made.
        self._buf = buf
        self._name = name
        self.onclose = onclose
        self.is_real = False
        self.is_closed = False
        self._pos = 0
        self._size = len(buf)

    @property
    def file(self) -> MappedFile:  # type: ignore[override]
        """What StructFile's own methods read through (``pickle.load``, iteration): this object."""
        return self

    def read(self, size: int | None = -1) -> bytes:
        start = self._pos
        end = self._size if size is None or size < 0 else start + size
        if end > self._size:
            end = self._size
        if end > start:
            self._pos = end
            return self._buf[start:end].tobytes()  # type: ignore[union-attr]
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        start = end = self._pos
        limit = self._size if size is None or size < 0 else min(self._size, start + size)
        while end < limit:  # a chunk at a time: never copy the rest of the file to find one newline
            chunk = bytes(self._buf[end : min(limit, end + 4096)])
            newline = chunk.find(b"\n")
            if newline >= 0:
                end += newline + 1
                break
            end += len(chunk)
        self._pos = end
        return bytes(self._buf[start:end])

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            offset += self._pos
        elif whence == os.SEEK_END:
            offset += self._size
        self._pos = offset if offset > 0 else 0
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read_pickle(self) -> Any:
        """The pickle at the position, unpickled in C from a copy of a small window (grown if it falls short)."""
        size = _PICKLE_WINDOW
        while True:
            window = BytesIO(self._buf[self._pos : self._pos + size])
            try:
                value = pickle.load(window)
            except (EOFError, pickle.UnpicklingError):
                if self._pos + size >= self._size:
                    raise
                size *= 16
                continue
            self._pos += window.tell()
            return value

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def flush(self) -> None:
        """Nothing is written."""

    def close(self) -> None:
        if self.is_closed:
            raise ValueError("This file is already closed")
        if self.onclose:
            self.onclose(self)
        self.is_closed = True


def read_segments_in_place() -> None:
    """Make Whoosh's compound segments hand out :class:`MappedFile` (idempotent; for the whole process)."""
    compound.BufferFile = MappedFile  # type: ignore[misc]
