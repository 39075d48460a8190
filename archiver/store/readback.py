"""The frames a run just uploaded, kept in the local spool until the run is over, so it does not download them again.

A backup is followed at once by the search-index update, which reads every new
message; from a remote store that is a second transfer of everything the run
just sent (and, from a distant bucket, a round trip per message).  The writer
keeps a copy of each frame it uploads in ``blobs/tmp/`` (up to a budget, no
fsync: it is a cache, never the copy that counts) and reads from it first;
index worker processes find the same files through the writer's ``owner``
name (its pid and a token of its own, so two stores of one process never share
files), which the writer's :meth:`~archiver.store.s3.S3Store.opener` hands
them.  The writer removes its files when it closes; a writer that died leaves
them to the spool sweep (the names carry its pid: ``cache.<pid>.<token>.<blob id>``).

The cached bytes are the object the store holds (sealed, in an encrypted
archive), so a read through the cache is the read a download would give
(``get(verify=True)`` still re-hashes it) and leaves nothing readable on disk.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from pathlib import Path

from archiver.store.local import BlobId

DEFAULT_BUDGET = 512 * 2**20
"""Bytes of frames kept per writer: a first backup of about 20,000 typical messages; past it, reads download."""


class ReadbackCache:
    """Frames one writer (``owner``: ``<pid>.<token>``) uploaded, in ``spool``; writable only by that writer."""

    @classmethod
    def for_writer(cls, spool: Path) -> ReadbackCache:
        return cls(spool, f"{os.getpid()}.{secrets.token_hex(4)}", writable=True)

    def __init__(self, spool: Path, owner: str, writable: bool, budget: int = DEFAULT_BUDGET) -> None:
        self.spool = spool
        self.owner = owner
        self.writable = writable
        self.budget = budget
        self._used = 0
        self._lock = threading.Lock()

    def path(self, blob_id: BlobId) -> Path:
        return self.spool / f"cache.{self.owner}.{blob_id}"

    def _reserve(self, size: int) -> bool:
        with self._lock:
            if not self.writable or self._used + size > self.budget:
                return False
            self._used += size
            return True

    def keep(self, blob_id: BlobId, frame: bytes) -> None:
        """Keep a copy of ``frame`` (best effort: a full disk only means a later download)."""
        if not self._reserve(len(frame)):
            return
        temp = self.spool / f"cache.{self.owner}.{blob_id}.part"
        try:
            temp.write_bytes(frame)
            os.replace(temp, self.path(blob_id))  # never a half-written file under the name readers look for
        except OSError:
            temp.unlink(missing_ok=True)

    def adopt(self, blob_id: BlobId, spooled: Path) -> bool:
        """Keep the spooled frame file itself (a big message); False when the budget is spent (then delete it)."""
        if not self._reserve(spooled.stat().st_size):
            return False
        try:
            os.replace(spooled, self.path(blob_id))
        except OSError:
            return False
        return True

    def open(self, blob_id: BlobId):  # type: ignore[no-untyped-def]
        """The cached frame's file, open for reading, or None."""
        try:
            return self.path(blob_id).open("rb")
        except OSError:
            return None

    def clear(self) -> None:
        """Remove this writer's files (on close)."""
        if not self.writable:
            return
        for entry in self.spool.glob(f"cache.{self.owner}.*"):
            with contextlib.suppress(OSError):
                entry.unlink()
