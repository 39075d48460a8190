"""Catalog snapshots kept beside the blobs, so the store alone is enough to rebuild an archive.

A snapshot is ``snapshots/catalog-<UTC time>.sqlite.zst``: one zstd frame
(``zstd -d`` gives a plain SQLite file) holding a consistent copy of the
catalog (:func:`archiver.catalog.snapshot.write_snapshot`).  Names sort by
time, to the microsecond, so two runs finishing in the same second keep both.
Only the newest ``keep`` are kept: snapshots are the one kind of object a store
deletes (a blob, once written, never is).

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

from archiver.errors import StoreError

PREFIX = "catalog-"
SUFFIX = ".sqlite.zst"


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


def snapshot_name(at: datetime) -> str:
    return f"{PREFIX}{at.strftime('%Y%m%dT%H%M%S.%fZ')}{SUFFIX}"


def keep_snapshot(shelf: SnapshotShelf, plain: Path, at: datetime, keep: int) -> str:
    """Compress the catalog copy at ``plain``, upload it as the newest snapshot, then drop all but the newest ``keep``.

    Older snapshots are deleted only once the new one is stored, so a failure
    never leaves fewer than there were.  Returns the new snapshot's name.
    """
    name = snapshot_name(at)
    packed = shelf.temp_dir / f"snapshot.{os.getpid()}.{threading.get_ident()}.zst"
    try:
        compressor = zstandard.ZstdCompressor(level=3, write_checksum=True)
        with plain.open("rb") as source, packed.open("wb") as target:
            compressor.copy_stream(source, target, size=plain.stat().st_size)
        shelf.put_snapshot(name, packed)
    except OSError as exc:
        raise StoreError(f"cannot compress the catalog snapshot into {packed}: {exc.strerror or exc}") from exc
    finally:
        packed.unlink(missing_ok=True)
    ours = [each for each in shelf.snapshot_names() if each.startswith(PREFIX) and each.endswith(SUFFIX)]
    for old in ours[:-keep]:
        shelf.delete_snapshot(old)
    return name


def fetch_snapshot(shelf: SnapshotShelf, name: str, target: Path) -> None:
    """Download and decompress snapshot ``name`` into ``target`` (a plain SQLite file), in constant memory."""
    with shelf.read_snapshot(name) as source, target.open("wb") as out:
        try:
            zstandard.ZstdDecompressor().copy_stream(source, out)
        except zstandard.ZstdError as exc:
            raise StoreError(f"catalog snapshot {name} is damaged: {exc}") from None
