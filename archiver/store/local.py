"""Content-addressed, compressed, deduplicated message blobs on local disk.

On-disk format (readable with the ``zstd`` command alone)::

    <archive>/blobs/<id[0:2]>/<id>               one standard zstd frame
    <archive>/blobs/dict/<dict id>.zdict         a zstd dictionary some small frames use
    <archive>/blobs/tmp/                         in-flight writes and spooled big messages, never read
    <archive>/blobs/LAYOUT                       "shards: 1" (archives made before it: "shards: 2",
                                                 blobs under <id[0:2]>/<id[2:4]>/<id>)

One level of 256 shard directories keeps a directory per 4,000 blobs at a
million messages (ext4 and XFS index big directories); the two levels older
archives use made a directory of 4 KB for almost every blob of a young archive
(a large share of its disk use, and a mkdir per message written).

``id`` is the lowercase hex sha256 of the exact bytes fetched from the server;
the frame holds those bytes, with the content size and a checksum in the frame
header, so ``zstd -dc blobs/ab/abcd… | sha256sum`` prints the id back.

Small messages (under :data:`~archiver.store.frames.DICT_MESSAGE_LIMIT`) are mostly headers and short
text that repeat from message to message, which a lone 4 KB frame cannot
exploit: once an archive has seen :data:`~archiver.store.frames.DICT_SAMPLES` of them, the store
trains a zstd dictionary on them (once per archive) and compresses later small
messages with it, which makes them much smaller (docs/benchmarks.md).  Such a frame names its
dictionary in its header (``zstd -lv`` shows the "Dictionary ID") and reads
back with ``zstd -dc -D blobs/dict/<dict id>.zdict FILE``.  Big messages are
mostly attachments a dictionary does nothing for, so they never use one.

Durability protocol for a batch (the catalog commits only after it returns):

1. every new blob is compressed and written to ``tmp/``;
2. the temp files' data is made durable;
3. each temp file is renamed to its final name;
4. the renames are made durable.

On Linux, steps 2 and 4 are one ``syncfs(2)`` each for the whole batch (a
batch costs two flushes instead of a file fsync per message plus one per
directory); elsewhere every temp file is fsynced and
every directory that gained an entry is fsynced.  Either way a file under its
final name is always complete (its data was durable before the rename made it
visible), and a crash leaves at most orphans in ``tmp/`` (swept by
:meth:`BlobStore.sweep_temp_of_dead`) or complete blobs the catalog does not
know yet (found again by hash on the next run, never rewritten).

With ``[archive] encryption = true`` the store is given a
:class:`~archiver.store.envelope.SealedEnvelope`: each file under
``blobs/<name[0:2]>/<name>`` is then the sealed frame, ``name`` a keyed hash
of the id, and dictionaries are sealed too (docs/encryption.md).  The store
uses the envelope for names only (:meth:`BlobStore._final_name`); its
:class:`~archiver.store.frames.FrameCodec` seals and opens the bytes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from archiver.errors import IntegrityError, StoreError
from archiver.store.envelope import PLAIN, Envelope
from archiver.store.frames import FrameCodec, rehash

log = logging.getLogger("archiver.store")

BlobId = str
"""Lowercase hex sha256 of a message's exact bytes."""

_HEX = frozenset("0123456789abcdef")


def blob_id_of(raw: bytes) -> BlobId:
    """The content address of ``raw``: its sha256, hex."""
    return hashlib.sha256(raw).hexdigest()


def is_blob_id(text: str) -> bool:
    """True for a well-formed blob id (guards every path built from user input)."""
    return len(text) == 64 and set(text) <= _HEX


@dataclass(frozen=True)
class StoredBlob:
    """What :meth:`BlobStore.put_batch` did with one message."""

    blob_id: BlobId
    size: int
    stored_size: int
    written: bool  # False when the blob was already present (deduplicated)


class BlobStore:
    """A local-disk blob store; the only code that knows blob file paths.

    Thread-safe for concurrent readers; one writer per archive (the backup run
    holds the archive lock).
    """

    def __init__(self, root: Path, compression_level: int = 3, workers: int = 2, envelope: Envelope = PLAIN) -> None:
        self.root = Path(root)
        self.envelope = envelope
        self.blob_root = self.root / "blobs"
        self.temp_dir = self.blob_root / "tmp"
        self.dict_dir = self.blob_root / "dict"
        self._blob_root_name = str(self.blob_root)
        self._shards_seen: set[str] = set()  # shard directories known to exist (they are never removed)
        self.compression_level = compression_level
        self.codec = FrameCodec(self, compression_level, str(self.blob_root), envelope)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="blobstore")
        self._use_syncfs = _syncfs_function() is not None
        try:
            self.temp_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create blob store at {self.blob_root}: {exc.strerror}") from exc
        self._levels = self._shard_levels()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> BlobStore:
        return self

    def opener(self) -> Callable[[], BlobStore]:
        """A picklable function opening this store again (an index worker process), with its unlocked envelope."""
        return functools.partial(BlobStore, self.root, self.compression_level, 1, self.envelope)

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths -------------------------------------------------------------
    def path_of(self, blob_id: BlobId) -> Path:
        if not is_blob_id(blob_id):
            raise IntegrityError(f"not a blob id: {blob_id[:80]!r}")
        return Path(self._final_name(blob_id))

    def _shard_levels(self) -> int:
        """1 or 2 shard levels, from ``blobs/LAYOUT``; an archive without it is new (1) or older (2 levels)."""
        marker = self.blob_root / "LAYOUT"
        try:
            text = marker.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            text = None
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(f"cannot read {marker}: {exc}") from exc
        if text is not None:
            if text not in ("shards: 1", "shards: 2"):
                raise StoreError(f"{marker}: unknown blob layout {text!r} (expected 'shards: 1' or 'shards: 2')")
            return int(text[-1])
        with os.scandir(self.blob_root) as entries:
            older = any(len(entry.name) == 2 and entry.is_dir() for entry in entries)
        levels = 2 if older else 1
        try:
            self._write_small(marker, f"shards: {levels}\n".encode("ascii"))
        except OSError as exc:  # a read-only archive: the layout found is still the right one
            log.debug("could not record the blob layout in %s: %s", marker, exc)
        return levels

    def exists(self, blob_id: BlobId) -> bool:
        return self.path_of(blob_id).exists()

    def _final_name(self, blob_id: BlobId) -> str:
        """:meth:`path_of` as a string, for ids this store computed (no Path objects in the write loop)."""
        name = self.envelope.object_name(blob_id)
        if self._levels == 1:
            return f"{self._blob_root_name}/{name[0:2]}/{name}"
        return f"{self._blob_root_name}/{name[0:2]}/{name[2:4]}/{name}"

    # -- dictionaries (the codec's DictionaryShelf) ----------------------------
    def dictionary_ids(self) -> list[int]:
        names = sorted(self.dict_dir.glob("*.zdict")) if self.dict_dir.is_dir() else []
        return sorted(int(path.stem) for path in names if path.stem.isdigit())

    def read_dictionary(self, dict_id: int) -> bytes:
        path = self.dict_dir / f"{dict_id}.zdict"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise IntegrityError(f"compression dictionary {path.name} is missing from {self.dict_dir}") from None
        except OSError as exc:
            raise _store_error("read", path, exc) from exc

    def write_dictionary(self, dict_id: int, data: bytes) -> None:
        """Write the dictionary under its final name and make it durable before any frame can name it."""
        self.dict_dir.mkdir(exist_ok=True)
        final = self.dict_dir / f"{dict_id}.zdict"
        try:
            self._write_small(final, data)
        except OSError as exc:
            raise _store_error("write", final, exc) from exc

    def _write_small(self, final: Path, data: bytes) -> None:
        """Write a small file under ``final`` atomically and durably (temp, fsync, rename, directory fsyncs)."""
        temp = self.temp_dir / f"{final.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with temp.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, final)
            _fsync_dir(final.parent)
            if final.parent != self.blob_root:  # blobs/dict/ may have just been created
                _fsync_dir(self.blob_root)
        except OSError:
            temp.unlink(missing_ok=True)
            raise

    # -- writing -----------------------------------------------------------
    def _write_temp(self, blob_id: BlobId, raw: bytes) -> tuple[Path, int]:
        """Compress ``raw`` into a temp file (fsynced unless the batch uses syncfs); return its path and size."""
        frame = self.codec.compress(blob_id, raw)
        temp = self.temp_dir / f"{blob_id}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            try:
                view = memoryview(frame)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if not self._use_syncfs:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise _store_error("write", temp, exc) from exc
        return temp, len(frame)

    def _write_temps(self, fresh: dict[BlobId, bytes]) -> dict[BlobId, tuple[Path, int]]:
        """Write every new blob to a temp file in parallel; on any failure remove them all."""
        futures = {blob_id: self._pool.submit(self._write_temp, blob_id, raw) for blob_id, raw in fresh.items()}
        temps: dict[BlobId, tuple[Path, int]] = {}
        failure: BaseException | None = None
        for blob_id, future in futures.items():
            try:
                temps[blob_id] = future.result()
            except BaseException as exc:
                failure = failure or exc
        if failure is not None:
            for temp, _ in temps.values():
                temp.unlink(missing_ok=True)
            raise failure
        return temps

    def put_batch(self, raws: Sequence[bytes]) -> list[StoredBlob]:
        """Store every message of a batch durably; one result per input, in order.

        When this returns, every blob is complete under its final name and its
        directory entry is on disk, so the caller may commit the catalog.
        """
        ids = list(self._pool.map(blob_id_of, raws)) if len(raws) > 1 else [blob_id_of(r) for r in raws]
        fresh: dict[BlobId, bytes] = {}
        for blob_id, raw in zip(ids, raws, strict=True):
            if blob_id not in fresh and not os.path.exists(self._final_name(blob_id)):
                fresh[blob_id] = raw
        if fresh:
            self.codec.learn(fresh.values())
        temps = self._write_temps(fresh)
        if temps:
            self._commit(temps)
        return self._results(ids, raws, temps)

    def _commit(self, temps: dict[BlobId, tuple[Path, int]]) -> None:
        """Steps 2–4 of the durability protocol: temp data durable, renamed to final names, renames durable."""
        touched: set[str] = set()
        try:
            if self._use_syncfs:
                _syncfs(self.temp_dir)  # the data, before any final name can point at it
            for blob_id, (temp, _) in temps.items():
                final = self._final_name(blob_id)
                shard = final[: -len(blob_id) - 1]
                if shard not in self._shards_seen:
                    if not os.path.isdir(shard):
                        os.makedirs(shard, exist_ok=True)
                        touched.add(os.path.dirname(shard))
                        touched.add(self._blob_root_name)
                    self._shards_seen.add(shard)
                os.replace(temp, final)
                touched.add(shard)
            if self._use_syncfs:
                _syncfs(self.blob_root)  # the renames and new directories
            else:
                for directory in touched:
                    _fsync_dir(Path(directory))
        except OSError as exc:
            for temp, _ in temps.values():
                temp.unlink(missing_ok=True)
            raise _store_error("commit", self.blob_root, exc) from exc

    def put_file(self, source: BinaryIO, size: int) -> StoredBlob:
        """Store one big message read from ``source`` (``size`` bytes), streaming: never whole in memory.

        The bytes are hashed and compressed chunk by chunk into a temp file (the same frame
        as :meth:`put_batch` writes: content size and checksum in the header, no dictionary),
        which is then committed like a batch of one, so the caller may commit the catalog
        when this returns.  A blob already present is left as it is.

        A sealed object is labelled with its name, so with encryption the message is
        hashed in a first pass (and not compressed at all when it is stored already);
        a source that cannot seek is first copied to an anonymous file in :attr:`temp_dir`.
        """
        with contextlib.ExitStack() as stack:
            source, expected = self.codec.hash_ahead(source, size, self.temp_dir, stack)
            if expected is not None and os.path.exists(self._final_name(expected)):
                return StoredBlob(expected, size, self._stored_size(expected), False)
            return self._stream_in(source, size, expected)

    def _stream_in(self, source: BinaryIO, size: int, expected: BlobId | None) -> StoredBlob:
        """:meth:`put_file`'s one pass: hash, compress and wrap in the envelope chunk by chunk, then commit."""
        temp = self.temp_dir / f"stream.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with temp.open("wb") as handle:
                blob_id = self.codec.compress_stream(source, size, handle, expected)
                handle.flush()
                if not self._use_syncfs:
                    os.fsync(handle.fileno())
                stored_size = handle.tell()
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise _store_error("write", temp, exc) from exc
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        if os.path.exists(self._final_name(blob_id)):
            temp.unlink(missing_ok=True)
            return StoredBlob(blob_id, size, self._stored_size(blob_id), False)
        self._commit({blob_id: (temp, stored_size)})
        return StoredBlob(blob_id, size, stored_size, True)

    def _results(
        self, ids: list[BlobId], raws: Sequence[bytes], temps: dict[BlobId, tuple[Path, int]]
    ) -> list[StoredBlob]:
        results = []
        for blob_id, raw in zip(ids, raws, strict=True):
            entry = temps.pop(blob_id, None)
            if entry is not None:
                results.append(StoredBlob(blob_id, len(raw), entry[1], True))
            else:
                results.append(StoredBlob(blob_id, len(raw), self._stored_size(blob_id), False))
        return results

    def _stored_size(self, blob_id: BlobId) -> int:
        try:
            return self.path_of(blob_id).stat().st_size
        except OSError:
            return 0

    # -- reading -----------------------------------------------------------
    def get(self, blob_id: BlobId, verify: bool = True) -> bytes:
        """The exact bytes of a blob; with ``verify`` the hash is checked too."""
        path = self.path_of(blob_id)
        try:
            stored = path.read_bytes()
        except FileNotFoundError:
            raise IntegrityError(f"blob {blob_id} is missing from {self.blob_root}") from None
        except OSError as exc:
            raise _store_error("read", path, exc) from exc
        return self.codec.decompress(blob_id, stored, verify)

    def open(self, blob_id: BlobId) -> BinaryIO:
        """A streaming reader of the blob's bytes (constant memory for huge messages)."""
        path = self.path_of(blob_id)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise IntegrityError(f"blob {blob_id} is missing from {self.blob_root}") from None
        return self.codec.reader(blob_id, handle)  # type: ignore[arg-type]

    def check(self, blob_id: BlobId, expected_size: int | None = None) -> str | None:
        """Re-hash one blob by streaming it; None if sound, else what is wrong."""
        return rehash(self.open, blob_id, expected_size)

    def iter_ids(self) -> Iterator[BlobId]:
        """Every blob id present on disk (temp files excluded), in either layout.

        A sealed object is named by a keyed hash: its id is read from inside it (the first
        chunk only), and one that cannot be read with this archive's key is logged and skipped.
        """
        for path in self._object_paths():
            if not self.envelope.sealed:
                yield path.name
                continue
            try:
                with path.open("rb") as handle:
                    found = self.envelope.blob_id_in(path.name, handle)
            except OSError as exc:
                log.warning("cannot read %s: %s", path, exc.strerror or exc)
                continue
            if found is None:
                log.warning("%s does not open with this archive's key (damaged, or from another archive)", path)
                continue
            yield found

    def _object_paths(self) -> Iterator[Path]:
        """Every object file under ``blobs/`` (temp files and dictionaries excluded), in either layout."""
        for first in sorted(self.blob_root.iterdir()):
            if len(first.name) != 2 or not first.is_dir():
                continue
            for entry in sorted(first.iterdir()):
                if is_blob_id(entry.name):
                    yield entry
                elif len(entry.name) == 2 and entry.is_dir():
                    yield from sorted(e for e in entry.iterdir() if is_blob_id(e.name))

    def sweep_temp_of_dead(self) -> int:
        """Remove temp files left by writers that are no longer alive; returns how many.

        Temp names carry the writer's pid, so runs of other accounts going on at
        the same time (in this or another process) keep their files.
        """
        return sweep_dead_writers(self.temp_dir)


def sweep_dead_writers(temp_dir: Path) -> int:
    """Remove the files of ``temp_dir`` whose writer (the pid in ``<name>.<pid>.<suffix>``) is gone; how many."""
    removed = 0
    for entry in temp_dir.iterdir():
        parts = entry.name.split(".")
        pid = int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None
        if pid is not None and _alive(pid):
            continue
        entry.unlink(missing_ok=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@functools.cache
def _syncfs_function() -> Callable[[int], int] | None:
    """libc's ``syncfs`` (Linux), or None where the platform has none."""
    if os.uname().sysname != "Linux":
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols, libc's among them (no ldconfig run)
    except OSError:
        return None
    return getattr(libc, "syncfs", None)


def _syncfs(path: Path) -> None:
    """Flush the whole filesystem holding ``path``; raises OSError as fsync would (Linux ≥ 5.8 reports errors)."""
    function = _syncfs_function()
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if function is None or function(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _store_error(action: str, path: Path, exc: OSError) -> StoreError:
    if exc.errno == errno.ENOSPC:
        return StoreError(f"disk full while trying to {action} {path}: free some space and run again")
    if exc.errno == errno.EDQUOT:
        return StoreError(f"disk quota exceeded while trying to {action} {path}")
    return StoreError(f"cannot {action} {path}: {exc.strerror or exc}")
