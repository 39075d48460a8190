"""An opened archive: its blob store and catalog, and the per-account run lock."""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from archiver.catalog import Catalog
from archiver.config import ArchiveConfig
from archiver.errors import ArchiverError, StoreError
from archiver.store import BlobStore


class Archive:
    """The archive directory: ``blobs/``, ``catalog.sqlite3``, ``locks/`` (and later ``index/``)."""

    def __init__(self, settings: ArchiveConfig, readonly: bool = False) -> None:
        self.settings = settings
        self.root = Path(settings.path)
        if not readonly:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the archive directory {self.root}: {exc.strerror}") from exc
        self.catalog = Catalog.open(self.root, readonly=readonly)
        self.store = BlobStore(self.root, compression_level=settings.compression_level)

    def close(self) -> None:
        self.store.close()
        self.catalog.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def account_lock(self, account: str) -> Iterator[None]:
        """Hold the run lock of one account, so two runs of it never overlap.

        An advisory ``flock``: the kernel drops it when the holder dies, so a
        killed run never leaves a stale lock behind.
        """
        lock_dir = self.root / "locks"
        lock_dir.mkdir(exist_ok=True)
        fd = os.open(lock_dir / f"{account}.lock", os.O_RDWR | os.O_CREAT, 0o640)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
                    raise ArchiverError(
                        f"{account}: a backup of this account is already running (pid {holder})"
                    ) from None
                raise
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            os.close(fd)
