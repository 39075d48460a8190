"""Blob storage: where message bytes live, behind one small interface.

A blob is one message's exact bytes, named by the lowercase hex sha256 of those
bytes (its :data:`BlobId`), stored compressed and never changed once written.
:class:`BlobBackend` is the whole contract the rest of archiver relies on;
:class:`~archiver.store.local.BlobStore` (``local.py``) keeps blobs on a local
disk, :class:`~archiver.store.s3.S3Store` (``s3.py``) in an S3-compatible bucket;
both write the one format of ``frames.py``.  A new backend (a replica) implements
the same methods with the same promises, so the backup, restore, export, index
and verify code does not change; :func:`open_store` picks the backend the
config names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from archiver.config import ArchiveConfig
from archiver.store.envelope import PLAIN, Envelope
from archiver.store.local import BlobId, BlobStore, StoredBlob, blob_id_of, is_blob_id


@runtime_checkable
class BlobBackend(Protocol):
    """What archiver needs of a blob store; every method's docstring is part of the contract.

    Errors: :class:`~archiver.errors.IntegrityError` means the content is wrong or
    missing (permanent: retrying cannot help); :class:`~archiver.errors.StoreError`
    means the store could not be reached or written (the caller may retry later).
    No method ever returns partial or unverified bytes as if they were whole.
    """

    #: A local directory where a source may spool a message too big for memory before
    #: :meth:`put_file`; its files are named ``<name>.<pid>.<suffix>`` so that
    #: :meth:`sweep_temp_of_dead` can tell a dead writer's leftovers from a live one's.
    temp_dir: Path

    def put_batch(self, raws: Sequence[bytes]) -> list[StoredBlob]:
        """Store every message of a batch; one :class:`StoredBlob` per input, in order.

        Durable on return: every blob is complete under its final name and will
        survive a crash, so the caller may then commit the catalog (blob before
        catalog is archiver's one ordering rule).  Idempotent: a blob already
        present is left untouched (``written=False``), never overwritten, and the
        same bytes given twice in one batch are stored once.
        """
        ...

    def put_file(self, source: BinaryIO, size: int) -> StoredBlob:
        """Store one message read from ``source`` (``size`` bytes) without holding it in memory.

        The same durability and idempotence as :meth:`put_batch`.
        """
        ...

    def get(self, blob_id: BlobId, verify: bool = True) -> bytes:
        """The exact bytes of a blob; with ``verify`` their sha256 is checked against ``blob_id``."""
        ...

    def open(self, blob_id: BlobId) -> BinaryIO:
        """A streaming reader of the blob's bytes, in constant memory whatever the message's size."""
        ...

    def exists(self, blob_id: BlobId) -> bool:
        """Whether the blob is stored (complete: a write in progress does not count)."""
        ...

    def check(self, blob_id: BlobId, expected_size: int | None = None) -> str | None:
        """Re-read and re-hash one blob: None when it is sound, else one line saying what is wrong."""
        ...

    def iter_ids(self) -> Iterator[BlobId]:
        """Every complete blob's id, each once (for verify's orphan count and, later, replication)."""
        ...

    def sweep_temp_of_dead(self) -> int:
        """Remove what writers that died mid-write left behind; returns how many were removed.

        Writes still in progress in live processes (other accounts' runs) are kept.
        """
        ...

    def opener(self) -> Callable[[], BlobBackend]:
        """A picklable function that opens this same store again, for reading, in another process (index workers).

        It carries the archive's unlocked envelope: a worker of an encrypted archive never asks for the key.
        """
        ...

    def close(self) -> None:
        """Release threads and handles; the backend is not used afterwards."""
        ...


def open_store(settings: ArchiveConfig, envelope: Envelope = PLAIN, readonly: bool = False) -> BlobBackend:
    """The blob store ``[archive]`` names: the local disk under ``path`` (default), or ``store = "s3://…"``.

    ``envelope`` is the archive's, unlocked (:func:`archiver.store.envelope.envelope_for`): every
    backend seals and names its objects with it.  An S3 store is checked now (bucket, credentials),
    so a bad one is one line before any work.
    """
    if settings.store is None:
        return BlobStore(Path(settings.path), compression_level=settings.compression_level, envelope=envelope)
    from archiver.store.s3 import S3Store

    return S3Store(
        settings.store, Path(settings.path), settings.compression_level, readonly=readonly, envelope=envelope
    )


__all__ = ["BlobBackend", "BlobId", "BlobStore", "StoredBlob", "blob_id_of", "is_blob_id", "open_store"]
