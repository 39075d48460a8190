"""A big message body received into a file instead of memory.

A 200 MB message held as ``bytes`` costs the backup several copies of it (the
literal, the FETCH response, the compressed frame), far past the memory budget.
So a literal over :data:`SPOOL_THRESHOLD` goes from the socket into a
:class:`SpooledBody`: a file in the archive's ``blobs/tmp/`` that the store then
hashes and compresses from, streaming.  Its name carries this process's pid, as
every temp file there does, so the store's sweep of dead writers removes what a
killed run leaves; a live process removes it as soon as the body is stored or
dropped (:meth:`SpooledBody.discard`, or when the object is collected).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import weakref
from pathlib import Path
from typing import BinaryIO

from archiver.errors import StoreError

SPOOL_THRESHOLD = 16 * 2**20
"""Literals larger than this are spooled to disk; smaller ones stay ``bytes`` (fast path unchanged)."""
HEAD_BYTES = 512 * 1024
"""How much of a spooled message the catalog's header summary reads (headers longer than that are not mail)."""

_serial = itertools.count()


class SpooledBody:
    """A message's exact bytes in a temp file: ``len()``, :meth:`head`, :meth:`open`, :meth:`discard`.

    Written once by the reader that receives it (:meth:`write`), then only read.
    """

    def __init__(self, directory: Path) -> None:
        self.path = os.path.join(directory, f"spool.{os.getpid()}.{next(_serial)}.tmp")
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise _spool_error(self.path, exc) from None
        self.size = 0
        self._finalizer = weakref.finalize(self, _close_and_unlink, self._fd, self.path)

    def write(self, data: bytes | memoryview) -> None:
        """Append ``data`` (the reader's receive buffer)."""
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
                self.size += written
        except OSError as exc:
            raise _spool_error(self.path, exc) from None

    def __len__(self) -> int:
        return self.size

    def head(self, count: int = HEAD_BYTES) -> bytes:
        """The first ``count`` bytes (fewer when the message is shorter)."""
        return os.pread(self._fd, min(count, self.size), 0)

    def open(self) -> BinaryIO:
        """A new reader of the whole body from its start."""
        return open(self.path, "rb")

    def read_all(self) -> bytes:
        """The whole body in memory: only for the rare response the fast FETCH parser cannot read."""
        with self.open() as handle:
            return handle.read()

    def discard(self) -> None:
        """Remove the file now (idempotent)."""
        self._finalizer()

    def __repr__(self) -> str:
        return f"SpooledBody({self.path!r}, {self.size} bytes)"


def _close_and_unlink(fd: int, path: str) -> None:
    try:
        os.close(fd)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _spool_error(path: str, exc: OSError) -> StoreError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreError(f"disk full while receiving a large message into {path}: free some space and run again")
    return StoreError(f"cannot receive a large message into {path}: {exc.strerror or exc}")


__all__ = ["HEAD_BYTES", "SPOOL_THRESHOLD", "SpooledBody"]
