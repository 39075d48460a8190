"""Catalog snapshots kept beside the blobs, so the store alone is enough to rebuild an archive.

A snapshot is ``snapshots/catalog-<UTC time>.sqlite.zst``: one zstd frame
(``zstd -d`` gives a plain SQLite file) holding a consistent copy of the
catalog (:func:`archiver.catalog.snapshot.write_snapshot`).  Names sort by
time, to the microsecond, so two runs finishing in the same second keep both.
Only the newest ``keep`` are kept: snapshots are the one kind of object a store
deletes (a blob, once written, never is).

In an encrypted archive the compressed snapshot is sealed with the archive's
key before it leaves the machine (:func:`archiver.store.envelope.seal_file`,
labelled with its name) and named ``catalog-<UTC time>.sqlite.zst.sealed``; the
bucket also holds a copy of ``keys.json`` (the data key, wrapped: useless
without the passphrase or key file), so the bucket alone and the passphrase are
enough to recover (docs/encryption.md, "Encrypted S3 stores").

A store keeps snapshots when it is a :class:`SnapshotShelf` (S3 today, replicas
later); the local disk needs none (the catalog is already there).
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

import zstandard

from archiver.errors import ArchiveKeyError, StoreError
from archiver.store.envelope import PLAIN, Envelope, SealedEnvelope, open_sealed, seal_file

PREFIX = "catalog-"
SUFFIX = ".sqlite.zst"
SEALED_SUFFIX = ".sqlite.zst.sealed"


@runtime_checkable
class SnapshotShelf(Protocol):
    """Where a store keeps catalog snapshots (``snapshots/<name>``)."""

    temp_dir: Path

    def put_snapshot(self, name: str, path: Path) -> None:
        """Upload the file at ``path`` as snapshot ``name``; durable on return."""
        ...

    def snapshot_names(self) -> list[str]:
        """Every snapshot's name, oldest first."""
        ...

    def read_snapshot(self, name: str) -> BinaryIO:
        """A streaming reader of one snapshot's bytes."""
        ...

    def delete_snapshot(self, name: str) -> None:
        """Remove one snapshot (and nothing else)."""
        ...

    def put_key_file(self, data: bytes) -> None:
        """Keep a copy of an encrypted archive's ``keys.json`` (replacing the store's: the local copy rules)."""
        ...

    def read_key_file(self) -> bytes | None:
        """The store's copy of ``keys.json``, or None when it has none (a plain archive)."""
        ...


def snapshot_name(at: datetime, sealed: bool = False) -> str:
    return f"{PREFIX}{at.strftime('%Y%m%dT%H%M%S.%fZ')}{SEALED_SUFFIX if sealed else SUFFIX}"


def is_snapshot(name: str) -> bool:
    return name.startswith(PREFIX) and (name.endswith(SUFFIX) or name.endswith(SEALED_SUFFIX))


def keep_snapshot(shelf: SnapshotShelf, plain: Path, at: datetime, keep: int, envelope: Envelope = PLAIN) -> str:
    """Compress the catalog copy at ``plain`` (and seal it with a sealed ``envelope``), upload it as the newest
    snapshot, then drop all but the newest ``keep``.

    Older snapshots are deleted only once the new one is stored, so a failure
    never leaves fewer than there were.  Returns the new snapshot's name.
    """
    name = snapshot_name(at, sealed=envelope.sealed)
    packed = shelf.temp_dir / f"snapshot.{os.getpid()}.{threading.get_ident()}.zst"
    sealed = packed.with_name(packed.name + ".sealed")
    try:
        compressor = zstandard.ZstdCompressor(level=3, write_checksum=True)
        with plain.open("rb") as source, packed.open("wb") as target:
            compressor.copy_stream(source, target, size=plain.stat().st_size)
        if isinstance(envelope, SealedEnvelope):
            seal_file(envelope.key, packed, sealed, name)  # labelled with its name: a renamed snapshot is refused
            packed.unlink()
            shelf.put_snapshot(name, sealed)
        else:
            shelf.put_snapshot(name, packed)
    except OSError as exc:
        raise StoreError(f"cannot compress the catalog snapshot into {packed}: {exc.strerror or exc}") from exc
    finally:
        packed.unlink(missing_ok=True)
        sealed.unlink(missing_ok=True)
    ours = [each for each in shelf.snapshot_names() if is_snapshot(each)]
    for old in ours[:-keep]:
        shelf.delete_snapshot(old)
    return name


def fetch_snapshot(shelf: SnapshotShelf, name: str, target: Path, envelope: Envelope = PLAIN) -> None:
    """Download and decompress snapshot ``name`` into ``target`` (a plain SQLite file), in constant memory.

    A sealed snapshot needs the archive's unlocked ``envelope``; it is authenticated chunk by chunk
    (IntegrityError when damaged or renamed).
    """
    source = shelf.read_snapshot(name)
    if name.endswith(SEALED_SUFFIX):
        if not isinstance(envelope, SealedEnvelope):
            source.close()
            raise ArchiveKeyError(f"catalog snapshot {name} is encrypted: set encryption = true and its passphrase")
        source = open_sealed(envelope.key, source, name)
    with source, target.open("wb") as out:
        try:
            zstandard.ZstdDecompressor().copy_stream(source, out)
        except zstandard.ZstdError as exc:
            raise StoreError(f"catalog snapshot {name} is damaged: {exc}") from None
