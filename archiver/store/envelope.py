"""What a backend writes around a compressed frame, and the name it stores a blob under.

Every backend keeps its blobs through an :class:`Envelope`, in exactly two
places: :meth:`Envelope.object_name` (the blob id → the object's name, asked by
the backend) and the ``seal_*``/``open_*``/``*_writer``/``*_reader`` methods
(the bytes around the zstd frame and around a dictionary, applied by the
backend's :class:`~archiver.store.frames.FrameCodec`).  A backend is given the
envelope when it is opened, and hands it on through its ``opener()`` (index
worker processes never ask for the passphrase).  :data:`PLAIN` changes nothing: the object
is the frame, named by the blob id (the format in :mod:`archiver.store.local`).
:class:`SealedEnvelope` (``[archive] encryption = true``, docs/encryption.md)
stores each blob as one sealed stream (:mod:`archiver.store.sealing`) of::

    blob id (32 bytes, binary) ‖ zstd frame

under the name ``HMAC-SHA256(name key, blob id)`` and with that name as the
associated data, so an object moved under another name, or one holding a
different blob's bytes, fails as loudly as a flipped bit.  The blob id inside
lets a backend list what it holds (``iter_ids``) without the catalog.
Dictionaries are sealed whole, labelled with their dictionary id.

:func:`seal_file` and :func:`open_sealed` seal any other file (a catalog
snapshot) with the same key, labelled with the name it is stored under.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import BinaryIO, Protocol

from archiver.config import ArchiveConfig
from archiver.errors import ArchiveKeyError, IntegrityError
from archiver.store import sealing
from archiver.store.keys import KEY_FILE_NAME, ArchiveKey, read_key_file, secret_from_config, unlock

_ID_BYTES = 32


class Envelope(Protocol):
    """How a blob's compressed frame becomes an object and back; the same for every backend."""

    sealed: bool
    key_id: str | None  # the archive key's id when sealed (shown by status), else None

    def object_name(self, blob_id: str) -> str:
        """The name the blob's object is stored under (64 lowercase hex characters either way)."""
        ...

    def seal_blob(self, blob_id: str, frame: bytes) -> bytes:
        """The object's bytes for a frame held in memory."""
        ...

    def blob_writer(self, sink: BinaryIO, blob_id: str) -> io.RawIOBase:
        """A writable for a streamed frame: its bytes reach ``sink`` as the object; ``close()`` ends the object
        (``sink`` stays open)."""
        ...

    def open_blob(self, blob_id: str, data: bytes) -> bytes | memoryview:
        """The frame inside an object held in memory (maybe a view of it); IntegrityError naming the blob if it is
        not that blob's."""
        ...

    def blob_reader(self, source: BinaryIO, blob_id: str) -> BinaryIO:
        """A reader of the frame inside the object ``source`` reads (closing it closes ``source``)."""
        ...

    def blob_id_in(self, name: str, source: BinaryIO) -> str | None:
        """The blob id the object named ``name`` holds (None when it cannot be read: damaged or foreign)."""
        ...

    def seal_dictionary(self, dict_id: int, data: bytes) -> bytes:
        """The stored bytes of a zstd dictionary."""
        ...

    def open_dictionary(self, dict_id: int, data: bytes) -> bytes:
        """A dictionary's bytes from what is stored; IntegrityError if they are not that dictionary's."""
        ...


class _Passthrough(io.RawIOBase):
    """Writes straight to ``sink``; closing it leaves ``sink`` open (the caller syncs and closes it)."""

    def __init__(self, sink: BinaryIO) -> None:
        super().__init__()
        self._sink = sink

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        return self._sink.write(data)


class PlainEnvelope:
    """No envelope: the object is the zstd frame itself, named by the blob id."""

    sealed = False
    key_id = None

    def object_name(self, blob_id: str) -> str:
        return blob_id

    def seal_blob(self, blob_id: str, frame: bytes) -> bytes:
        return frame

    def blob_writer(self, sink: BinaryIO, blob_id: str) -> io.RawIOBase:
        return _Passthrough(sink)

    def open_blob(self, blob_id: str, data: bytes) -> bytes | memoryview:
        return data

    def blob_reader(self, source: BinaryIO, blob_id: str) -> BinaryIO:
        return source

    def blob_id_in(self, name: str, source: BinaryIO) -> str | None:
        return name

    def seal_dictionary(self, dict_id: int, data: bytes) -> bytes:
        return data

    def open_dictionary(self, dict_id: int, data: bytes) -> bytes:
        return data


PLAIN = PlainEnvelope()


class SealedEnvelope:
    """Blobs and dictionaries sealed with the archive's key, blobs stored under keyed names."""

    sealed = True

    def __init__(self, key: ArchiveKey) -> None:
        self.key = key
        self.key_id = key.key_id

    def object_name(self, blob_id: str) -> str:
        return self.key.object_name(blob_id)

    def _label(self, blob_id: str) -> str:
        return f"blob {self.key.object_name(blob_id)}"

    def seal_blob(self, blob_id: str, frame: bytes) -> bytes:
        return sealing.seal_bytes(self.key.content_key, self._label(blob_id), bytes.fromhex(blob_id) + frame)

    def blob_writer(self, sink: BinaryIO, blob_id: str) -> io.RawIOBase:
        writer = sealing.SealedWriter(sink, self.key.content_key, self._label(blob_id))
        writer.write(bytes.fromhex(blob_id))
        return writer

    def open_blob(self, blob_id: str, data: bytes) -> bytes | memoryview:
        plain = sealing.open_bytes(self.key.content_key, self._label(blob_id), data, f"blob {blob_id}")
        _check_id(plain[:_ID_BYTES], blob_id)
        return memoryview(plain)[_ID_BYTES:]  # zstd reads any buffer: the frame is not copied

    def blob_reader(self, source: BinaryIO, blob_id: str) -> BinaryIO:
        reader = sealing.open_stream(source, self.key.content_key, self._label(blob_id), f"blob {blob_id}")
        try:
            _check_id(reader.read(_ID_BYTES), blob_id)
        except BaseException:
            reader.close()
            raise
        return reader

    def blob_id_in(self, name: str, source: BinaryIO) -> str | None:
        try:
            with sealing.open_stream(source, self.key.content_key, f"blob {name}", f"object {name}") as reader:
                held = reader.read(_ID_BYTES).hex()
        except IntegrityError:
            return None
        return held if len(held) == 2 * _ID_BYTES and self.key.object_name(held) == name else None

    def seal_dictionary(self, dict_id: int, data: bytes) -> bytes:
        return sealing.seal_bytes(self.key.content_key, f"dictionary {dict_id}", data)

    def open_dictionary(self, dict_id: int, data: bytes) -> bytes:
        what = f"compression dictionary {dict_id}"
        return sealing.open_bytes(self.key.content_key, f"dictionary {dict_id}", data, what)


def _check_id(held: bytes, blob_id: str) -> None:
    if held.hex() != blob_id:
        raise IntegrityError(f"blob {blob_id} is damaged: its object holds another blob")


def envelope_for(settings: ArchiveConfig) -> Envelope:
    """The envelope of the archive ``settings`` name: unlocked now, so a wrong key fails before any write.

    An archive with ``keys.json`` is encrypted whatever the config says: opening it
    with ``encryption`` off is refused rather than mixing plain and sealed blobs.
    """
    root = Path(settings.path)
    has_key_file = read_key_file(root) is not None
    if not settings.encryption:
        if has_key_file:
            raise ArchiveKeyError(
                f"{root} is encrypted ({KEY_FILE_NAME}) but [archive] encryption is off: set encryption = true "
                "and its passphrase or key_file"
            )
        return PLAIN
    if not has_key_file:
        raise ArchiveKeyError(
            f"[archive] encryption = true but {root} has no {KEY_FILE_NAME} yet: run `archiver key init` first"
        )
    return SealedEnvelope(unlock(root, secret_from_config(settings)))


# -- other files: catalog snapshots ------------------------------------------------------------------


def seal_stream(key: ArchiveKey, source: BinaryIO, sink: BinaryIO, name: str) -> int:
    """Seal everything ``source`` reads into ``sink`` (constant memory), labelled ``name``; returns the sealed size.

    ``name`` is the name the sealed file will be stored under (a catalog snapshot's object name):
    :func:`open_sealed` must be given the same one, so a snapshot renamed or swapped is refused.
    """
    with sealing.SealedWriter(sink, key.content_key, f"file {name}") as writer:
        shutil.copyfileobj(source, writer, 1 << sealing.CHUNK_LOG2)
    return writer.sealed_size


def seal_file(key: ArchiveKey, source: Path, sealed: Path, name: str) -> int:
    """Seal the file ``source`` into ``sealed`` (written, then fsynced); returns the sealed size."""
    with open(source, "rb") as reader, open(sealed, "wb") as sink:
        size = seal_stream(key, reader, sink, name)
        sink.flush()
        os.fsync(sink.fileno())
    return size


def open_sealed(key: ArchiveKey, source: BinaryIO, name: str) -> io.BufferedReader:
    """A streaming reader of a file sealed by :func:`seal_stream` under ``name``; it raises IntegrityError on damage.

    Every chunk is authenticated before it is returned, and the end is authenticated
    too: a reader that gets EOF has had the whole file.  Closing it closes ``source``.
    """
    return sealing.open_stream(source, key.content_key, f"file {name}", f"sealed file {name}")
