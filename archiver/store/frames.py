"""The blob format every backend shares: one zstd frame per message, small ones with the archive's dictionary.

A backend (``local.py``, ``s3.py``) only moves bytes; :class:`FrameCodec` decides
what those bytes are, so a blob written by one backend reads back through any
other (a replica, a recovery from the bucket).  The frame carries the content
size and a checksum in its header; a frame compressed with a dictionary names
it in its header (``zstd -lv`` shows the "Dictionary ID").

The codec also holds the archive's :class:`~archiver.store.envelope.Envelope`
and applies it around every frame and dictionary it makes or reads: what it
hands a backend is the object's bytes (the bare frame, or the sealed frame of
an encrypted archive), so no backend knows whether the archive is encrypted
beyond asking the envelope for an object's name.

Dictionaries are the one piece of state the format has besides the blobs.  The
codec trains one per archive, once, on :data:`DICT_SAMPLES` small messages, and
keeps it through the backend's :class:`DictionaryShelf` *before* any frame that
names it is written (a frame without its dictionary is unreadable).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO, Protocol

import zstandard

from archiver.errors import IntegrityError, StoreError
from archiver.store.envelope import PLAIN, Envelope
from archiver.store.sealing import read_exactly

log = logging.getLogger("archiver.store")

DICT_MESSAGE_LIMIT = 64 * 1024
"""Messages smaller than this are compressed with the archive's dictionary once there is one."""
DICT_SAMPLES = 1000
"""How many small messages a dictionary is trained on (about 5 MB of typical mail)."""
DICT_SIZE = 112 * 1024
"""Dictionary size: zstd's default; larger ones measured no better on mail."""
FRAME_HEADER_MAX = 18
"""Enough leading bytes of a frame to read its parameters (and so its dictionary id)."""
STREAM_CHUNK = 1 << 20
"""Bytes :meth:`FrameCodec.compress_stream` reads, hashes and compresses at a time."""


class DictionaryShelf(Protocol):
    """Where a backend keeps the archive's dictionaries (``blobs/dict/<dict id>.zdict``)."""

    def dictionary_ids(self) -> list[int]:
        """The ids of the dictionaries stored, in ascending order."""
        ...

    def read_dictionary(self, dict_id: int) -> bytes:
        """A dictionary's stored bytes; IntegrityError naming it when it is missing, StoreError when unreachable."""
        ...

    def write_dictionary(self, dict_id: int, data: bytes) -> None:
        """Keep a dictionary's stored bytes durably (it must survive a crash before any frame names it)."""
        ...


class FrameCodec:
    """Compressors and decompressors for one archive's frames, and its dictionary (trained once, cached).

    Thread-safe for compressing and decompressing (a compressor per thread);
    :meth:`learn` is called by the one writer of a batch.
    """

    def __init__(
        self, shelf: DictionaryShelf, level: int = 3, where: str = "the blob store", envelope: Envelope = PLAIN
    ) -> None:
        self.shelf = shelf
        self.level = level
        self.where = where
        self.envelope = envelope
        self._local = threading.local()
        self._dictionaries: dict[int, zstandard.ZstdCompressionDict] = {}
        self._dictionary: zstandard.ZstdCompressionDict | None = None  # the one new small frames use
        self._dictionary_looked_up = False
        self._samples: list[bytes] | None = None  # small messages collected for training, until trained

    # -- dictionaries --------------------------------------------------------
    def dictionary(self, dict_id: int) -> zstandard.ZstdCompressionDict:
        """The dictionary a frame names (cached); IntegrityError when it is gone or damaged."""
        found = self._dictionaries.get(dict_id)
        if found is not None:
            return found
        stored = self.shelf.read_dictionary(dict_id)
        found = zstandard.ZstdCompressionDict(self.envelope.open_dictionary(dict_id, stored))
        if found.dict_id() != dict_id:
            raise IntegrityError(
                f"compression dictionary {dict_id}.zdict in {self.where} is damaged "
                f"(it holds dictionary {found.dict_id()})"
            )
        self._dictionaries[dict_id] = found
        return found

    def writing_dictionary(self) -> zstandard.ZstdCompressionDict | None:
        """The dictionary for new small frames: the archive's (looked up once), or None (then samples are collected)."""
        if not self._dictionary_looked_up:
            self._dictionary_looked_up = True
            for dict_id in self.shelf.dictionary_ids():
                try:
                    self._use_for_writing(self.dictionary(dict_id))
                    break
                except (IntegrityError, StoreError) as exc:
                    log.warning("not using dictionary %d.zdict for new blobs: %s", dict_id, exc)
            if self._dictionary is None:
                self._samples = []
        return self._dictionary

    def _use_for_writing(self, dictionary: zstandard.ZstdCompressionDict) -> None:
        dictionary.precompute_compress(level=self.level)  # once, not per frame
        self._dictionary = dictionary

    def learn(self, fresh: Iterable[bytes]) -> None:
        """Collect small new messages; with enough of them, train the archive's dictionary and keep it durably.

        Call it before compressing a batch, so the batch that completes the
        samples is already compressed with the new dictionary.
        """
        if self.writing_dictionary() is not None or self._samples is None:
            return
        self._samples += [raw for raw in fresh if len(raw) < DICT_MESSAGE_LIMIT]
        if len(self._samples) < DICT_SAMPLES:
            return
        samples, self._samples = self._samples, None  # one attempt per store, whatever happens
        try:
            trained = zstandard.train_dictionary(DICT_SIZE, samples, level=self.level)
        except zstandard.ZstdError as exc:  # too little to learn from: small messages stay dictionary-less
            log.info("no compression dictionary for %s: %s", self.where, exc)
            return
        self.shelf.write_dictionary(
            trained.dict_id(), self.envelope.seal_dictionary(trained.dict_id(), trained.as_bytes())
        )
        self._dictionaries[trained.dict_id()] = trained
        self._use_for_writing(trained)

    # -- frames --------------------------------------------------------------
    def compressor(self, raw: bytes) -> zstandard.ZstdCompressor:
        """This thread's compressor for ``raw``: with the archive's dictionary for a small message when there is one."""
        dictionary = self._dictionary if len(raw) < DICT_MESSAGE_LIMIT else None
        key = "plain" if dictionary is None else f"dict{dictionary.dict_id()}"
        comp = getattr(self._local, key, None)
        if comp is None:
            comp = zstandard.ZstdCompressor(
                level=self.level, dict_data=dictionary, write_checksum=True, write_content_size=True
            )
            setattr(self._local, key, comp)
        return comp

    def compress(self, blob_id: str, raw: bytes) -> bytes:
        """The object of one message held in memory: its frame, in the envelope."""
        return self.envelope.seal_blob(blob_id, self.compressor(raw).compress(raw))

    def hash_ahead(
        self, source: BinaryIO, size: int, spool: Path, stack: contextlib.ExitStack
    ) -> tuple[BinaryIO, str | None]:
        """For :meth:`compress_stream`: the blob id before the first byte is compressed, when the envelope needs it.

        A sealed object is labelled with its name, so with encryption the message is hashed in a
        first pass (a source that cannot seek is first copied to an anonymous file in ``spool``,
        closed with ``stack``).  Returns the source to compress (rewound) and the id, or None
        when the envelope is plain (then one pass does both).
        """
        if not self.envelope.sealed:
            return source, None
        if not source.seekable():
            copy = stack.enter_context(tempfile.TemporaryFile(dir=spool))  # noqa: SIM115 (the caller's stack closes it)
            shutil.copyfileobj(source, copy, STREAM_CHUNK)
            copy.seek(0)
            source = copy  # type: ignore[assignment]
        start = source.tell()
        digest = hashlib.sha256()
        length = 0
        while chunk := source.read(STREAM_CHUNK):
            digest.update(chunk)
            length += len(chunk)
        if length != size:
            raise StoreError(f"a streamed message held {length} bytes, {size} were announced")
        source.seek(start)
        return source, digest.hexdigest()

    def compress_stream(self, source: BinaryIO, size: int, target: BinaryIO, expected: str | None = None) -> str:
        """Write the object of ``size`` bytes read from ``source`` to ``target`` in constant memory; the blob id.

        No dictionary (big messages are mostly attachments a dictionary does nothing for).  A sealed
        envelope needs the id first (``expected``, from :meth:`hash_ahead`).  StoreError when ``source``
        holds more or fewer bytes than announced, or other bytes than ``expected``; OSError from ``target`` passes.
        """
        if self.envelope.sealed and expected is None:
            raise ValueError("a sealed object needs its blob id first (FrameCodec.hash_ahead)")
        digest = hashlib.sha256()
        compressor = zstandard.ZstdCompressor(level=self.level, write_checksum=True, write_content_size=True)
        sink = self.envelope.blob_writer(target, expected or "")
        writer = compressor.stream_writer(sink, size=size, closefd=False)
        length = 0
        try:
            while chunk := source.read(STREAM_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
                length += len(chunk)
            if length != size:  # checked before the frame is ended (zstd would refuse the size)
                raise StoreError(f"a streamed message held {length} bytes, {size} were announced")
            writer.flush(zstandard.FLUSH_FRAME)
            sink.close()  # the envelope's end (a sealed object's last chunk); ``target`` stays open
        except zstandard.ZstdError as exc:  # more bytes than announced: the source changed under us
            raise StoreError(f"cannot compress a streamed message of {size} bytes: {exc}") from None
        blob_id = digest.hexdigest()
        if expected is not None and blob_id != expected:
            raise StoreError(f"a streamed message changed while it was stored ({expected} became {blob_id})")
        return blob_id

    def decompressor(self, header: bytes) -> zstandard.ZstdDecompressor:
        """A decompressor for the frame starting with ``header`` (with its dictionary, if it names one)."""
        try:
            dict_id = zstandard.get_frame_parameters(header).dict_id
        except zstandard.ZstdError:
            dict_id = 0  # not a frame header: let decompression report the damage
        if dict_id == 0:
            return zstandard.ZstdDecompressor()
        return zstandard.ZstdDecompressor(dict_data=self.dictionary(dict_id))

    def decompress(self, blob_id: str, stored: bytes, verify: bool) -> bytes:
        """The message in an object held in memory; IntegrityError when damaged or (``verify``) the hash differs."""
        frame = self.envelope.open_blob(blob_id, stored)
        try:
            raw = self.decompressor(bytes(frame[:FRAME_HEADER_MAX])).decompress(frame)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"blob {blob_id} is corrupt: {exc}") from exc
        if verify and hashlib.sha256(raw).hexdigest() != blob_id:
            raise IntegrityError(f"blob {blob_id} does not match its hash")
        return raw

    def reader(self, blob_id: str, stored: BinaryIO) -> BinaryIO:
        """A streaming reader of the message in the object ``stored`` reads; closing it closes ``stored``."""
        try:
            inner = self.envelope.blob_reader(stored, blob_id)
        except BaseException:
            stored.close()
            raise
        try:
            header = read_exactly(inner, FRAME_HEADER_MAX)
            decompressor = self.decompressor(header)
        except BaseException:
            inner.close()
            raise
        return decompressor.stream_reader(Prefixed(header, inner), closefd=True)  # type: ignore[return-value]


class Prefixed:
    """``header`` then the rest of ``body``: the frame header was read ahead to pick its dictionary."""

    def __init__(self, header: bytes, body: BinaryIO) -> None:
        self._header = header
        self._body = body

    def read(self, size: int = -1) -> bytes:
        if not self._header:
            return self._body.read(size)
        if 0 <= size < len(self._header):
            head, self._header = self._header[:size], self._header[size:]
            return head
        head, self._header = self._header, b""
        return head + self._body.read(-1 if size < 0 else size - len(head))

    def close(self) -> None:
        self._body.close()


def rehash(open_blob: Callable[[str], BinaryIO], blob_id: str, expected_size: int | None) -> str | None:
    """:meth:`BlobBackend.check` for any backend: stream the blob through sha256; None if sound, else what is wrong."""
    digest = hashlib.sha256()
    length = 0
    try:
        with open_blob(blob_id) as reader:
            while chunk := reader.read(1 << 20):
                digest.update(chunk)
                length += len(chunk)
    except IntegrityError as exc:
        return str(exc)
    except (zstandard.ZstdError, OSError) as exc:
        return f"blob {blob_id} is unreadable: {exc}"
    if digest.hexdigest() != blob_id:
        return f"blob {blob_id} does not match its hash"
    if expected_size is not None and length != expected_size:
        return f"blob {blob_id} holds {length} bytes, the catalog says {expected_size}"
    return None
