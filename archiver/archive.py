"""An opened archive: its blob store and catalog, and the per-account run lock."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from archiver.catalog import Catalog
from archiver.catalog.snapshot import write_snapshot
from archiver.config import ArchiveConfig
from archiver.errors import ArchiveAccessError, ArchiveKeyError, ArchiverError
from archiver.permissions import private_modes, warn_if_exposed
from archiver.store import BlobBackend, open_store
from archiver.store.envelope import PLAIN, envelope_for
from archiver.store.keys import install_key_file, key_file_path, read_key_file
from archiver.store.snapshots import SnapshotShelf, keep_snapshot
from archiver.times import utc_now


def index_root(archive_root: Path) -> Path:
    """Where the search index lives: the archive owns its layout, the index package only fills it."""
    return Path(archive_root) / "index"


def make_layout(settings: ArchiveConfig) -> None:
    """Create the archive's top level owner-only (group-readable only on request), whatever the umask.

    The directories and the catalog file are made here, before SQLite and the
    store open them, because SQLite gives its ``-wal``/``-shm`` files the
    catalog's mode and nothing below a private directory is reachable.  Every
    writer calls it first (:class:`Archive`, the scheduler's own catalog use).
    """
    root = Path(settings.path)
    _check_directory(root)
    dir_mode, file_mode = private_modes(settings.group_readable)
    if root.is_dir() and not os.access(root, os.W_OK):
        raise ArchiveAccessError(
            f"cannot write to the archive {root}: permission denied (this command needs write access; "
            "search, ls, status, verify and export only read)"
        )
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        for directory in (root, root / "blobs", root / "locks", index_root(root)):
            if not directory.exists():
                directory.mkdir(exist_ok=True)
                directory.chmod(dir_mode)  # mkdir's mode is narrowed by the umask; chmod is not
        catalog = root / Catalog.FILENAME
        if not catalog.exists():  # a new archive, maybe in a directory made beforehand (mkdir, systemd)
            with contextlib.suppress(PermissionError):  # not our directory: warn_if_exposed says so
                root.chmod(dir_mode)
            os.close(os.open(catalog, os.O_WRONLY | os.O_CREAT, file_mode))
            catalog.chmod(file_mode)
    except OSError as exc:
        raise ArchiveAccessError(f"cannot create the archive in {root}: {exc.strerror or exc}") from exc


def _check_directory(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise ArchiveAccessError(f"archive path {root} is not a directory: check [archive] path in the config")


def fetch_key_file(settings: ArchiveConfig) -> bool:
    """Copy an encrypted bucket's ``keys.json`` into an archive that has none (recovery on a new machine).

    False when the store holds none (a new archive: ``archiver key init`` makes it).
    """
    with open_store(settings, PLAIN, readonly=True) as store:
        found = store.read_key_file() if isinstance(store, SnapshotShelf) else None
    if found is None:
        return False
    install_key_file(Path(settings.path), found, str(settings.store), private_modes(settings.group_readable)[1])
    return True


class Archive:
    """The archive directory: ``blobs/``, the catalog (:attr:`Catalog.FILENAME`), ``locks/`` and ``index/``."""

    def __init__(self, settings: ArchiveConfig, readonly: bool = False) -> None:
        self.settings = settings
        self.root = Path(settings.path)
        _check_directory(self.root)
        if not readonly:
            make_layout(settings)
        warn_if_exposed(self.root, settings.group_readable)
        if settings.encryption and settings.store is not None and read_key_file(self.root) is None:
            fetch_key_file(settings)  # a new machine: the bucket's copy, then the passphrase decides
        envelope = envelope_for(settings)  # a wrong passphrase fails here, before anything is opened for writing
        self.encryption_key_id = envelope.key_id  # None: the archive is not encrypted
        self.catalog = Catalog.open(self.root, readonly=readonly)
        self.envelope = envelope
        self._readonly = readonly
        self._store: BlobBackend | None = None
        self._store_lock = threading.Lock()
        if settings.store is None:  # the local disk: opened now, as it always was (cheap; checks the directory)
            try:
                self._store = open_store(settings, envelope, readonly=readonly)
            except BaseException:
                self.catalog.close()
                raise

    @property
    def store(self) -> BlobBackend:
        """The blob store; an object store is reached on first use, so ``status`` and ``ls`` work while it is down."""
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    self._store = open_store(self.settings, self.envelope, readonly=self._readonly)
        return self._store

    @classmethod
    def for_reading(cls, settings: ArchiveConfig) -> Archive:
        """Open for a command that only reads (status, verify).

        Read-write when this user may write, so an older catalog is migrated as
        before; else read-only, so a backup operator with read access can use it.
        """
        root = Path(settings.path)
        catalog = root / Catalog.FILENAME
        writable = os.access(root, os.W_OK) and (not catalog.exists() or os.access(catalog, os.W_OK))
        return cls(settings, readonly=root.is_dir() and not writable)

    def keep_catalog_snapshot(self) -> str | None:
        """Copy the catalog, consistently, into the blob store (the newest ``snapshots_keep`` are kept there).

        After a run, so that the store alone is enough to rebuild the archive.
        None when the store keeps no snapshots (the local disk: the catalog is right there).
        """
        if not isinstance(self.store, SnapshotShelf) or self.settings.store is None:
            return None
        if self.envelope.sealed:  # with each snapshot, so the bucket alone (and the passphrase) is enough
            try:
                key_file = key_file_path(self.root).read_bytes()
            except OSError as exc:
                raise ArchiveKeyError(f"cannot read {key_file_path(self.root)}: {exc.strerror or exc}") from None
            self.store.put_key_file(key_file)
        plain = self.store.temp_dir / f"catalog.{os.getpid()}.snapshot"
        try:
            write_snapshot(self.catalog, plain)
            return keep_snapshot(self.store, plain, utc_now(), self.settings.store.snapshots_keep, self.envelope)
        finally:
            plain.unlink(missing_ok=True)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
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
        file_mode = private_modes(self.settings.group_readable)[1]
        fd = os.open(lock_dir / f"{account}.lock", os.O_RDWR | os.O_CREAT, file_mode)
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
