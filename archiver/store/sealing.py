"""The sealed stream: AES-256-GCM in chunks, so an object of any size is written and read in constant memory.

A construction after STREAM (Hoang, Reyhanitabar, Rogaway, Vizár, "Online
Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", 2015), as
Tink's streaming AEAD uses it.  One sealed object is::

    header   magic "ASL1" (4) | chunk size log2 (1) | salt (16) | nonce prefix (7)      28 bytes
    chunk 0  AES-256-GCM(plaintext[0 : C])  ‖ tag (16)
    chunk 1  AES-256-GCM(plaintext[C : 2C]) ‖ tag (16)
    …        the last chunk holds 0 to C bytes; an empty plaintext is one empty last chunk

The object key is HMAC-SHA256(content key, salt): a fresh random salt per
object, so no two objects share a key and a random nonce prefix cannot collide
across millions of objects.  Chunk ``i``'s nonce is ``prefix ‖ i (4 bytes, big
endian) ‖ last`` (``last`` is 1 for the final chunk, else 0), and every chunk's
associated data is ``header ‖ label``, where the label names the object (a blob's
object name, a dictionary's id, a snapshot's name).  So each of these fails
authentication instead of returning wrong bytes: a flipped bit anywhere
(header included), chunks reordered or dropped, an object cut at a chunk
boundary (its new last chunk was not sealed as last), bytes appended, and an
object moved under another object's name.

Readers never hand out a chunk before its tag is checked; what they raise is
:class:`~archiver.errors.IntegrityError` naming ``what`` (the blob, the file).
"""

from __future__ import annotations

import hmac
import io
import os
import struct
from typing import TYPE_CHECKING, BinaryIO

from archiver.errors import IntegrityError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def aes_gcm(key: bytes) -> AESGCM:
    """AES-256-GCM under ``key``.  ``cryptography`` is imported here, on first use: its bindings cost every
    command's start-up, and an archive that is not encrypted never needs them."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


MAGIC = b"ASL1"
CHUNK_LOG2 = 16
"""64 KiB plaintext chunks: 16 bytes of tag each (0.02 %), and a reader holds two of them at most."""
SALT_BYTES = 16
PREFIX_BYTES = 7
HEADER_BYTES = len(MAGIC) + 1 + SALT_BYTES + PREFIX_BYTES
TAG_BYTES = 16
KEY_BYTES = 32
_MAX_CHUNK_LOG2 = 24  # a reader refuses headers asking for more than 16 MiB of buffer


def object_key(content_key: bytes, salt: bytes) -> bytes:
    """The AES-256 key of one object: a PRF of the archive's content key and the object's random salt."""
    return hmac.digest(content_key, b"archiver sealed object\x00" + salt, "sha256")


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    if counter >= 1 << 32:
        raise IntegrityError("a sealed object may hold at most 2**32 chunks")
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


class SealedWriter(io.RawIOBase):
    """A writable that seals what it is given into ``sink``; :meth:`close` writes the last chunk.

    ``sink`` is left open (the caller owns it and makes it durable).  Not closing
    the writer leaves an object without a last chunk, which no reader accepts.
    """

    def __init__(self, sink: BinaryIO, content_key: bytes, label: str, chunk_log2: int = CHUNK_LOG2) -> None:
        super().__init__()
        self._header, self._aead, self._prefix, self._aad = _new_object(content_key, label, chunk_log2)
        self._chunk = 1 << chunk_log2
        self._sink = sink
        self._buffer = bytearray()
        self._counter = 0
        self.sealed_size = len(self._header)
        sink.write(self._header)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed SealedWriter")
        self._buffer += data
        # Keep at least one byte back: the final chunk must be sealed as last, even when it is full.
        while len(self._buffer) > self._chunk:
            self._emit(bytes(self._buffer[: self._chunk]), last=False)
            del self._buffer[: self._chunk]
        return len(data)

    def _emit(self, plain: bytes, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._prefix, self._counter, last), plain, self._aad)
        self._sink.write(sealed)
        self.sealed_size += len(sealed)
        self._counter += 1

    def close(self) -> None:
        if not self.closed:
            self._emit(bytes(self._buffer), last=True)
            self._buffer.clear()
        super().close()


class SealedReader(io.RawIOBase):
    """A readable of the plaintext sealed in ``source``; each chunk is authenticated before any of it is returned.

    Wrap it in :class:`io.BufferedReader` for ``peek`` and small reads.  Closing it
    closes ``source``.
    """

    def __init__(self, source: BinaryIO, content_key: bytes, label: str, what: str) -> None:
        super().__init__()
        self._source = source
        self._what = what
        self._aead, self._prefix, self._aad, chunk = _opened_object(
            read_exactly(source, HEADER_BYTES), content_key, label, what
        )
        self._sealed_chunk = chunk + TAG_BYTES
        self._counter = 0
        self._next = read_exactly(source, self._sealed_chunk)  # one chunk ahead: is the current one the last?
        self._plain = memoryview(b"")
        self._done = False
        if not self._next:
            raise IntegrityError(f"{what} is truncated: it ends after its header")

    def readable(self) -> bool:
        return True

    def _advance(self) -> None:
        current = self._next
        self._next = read_exactly(self._source, self._sealed_chunk) if len(current) == self._sealed_chunk else b""
        last = not self._next
        plain = _decrypt(self._aead, self._prefix, self._counter, last, current, self._aad, self._what)
        self._counter += 1
        self._plain = memoryview(plain)
        self._done = last

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._plain and not self._done:
            self._advance()
        count = min(len(buffer), len(self._plain))
        buffer[:count] = self._plain[:count]
        self._plain = self._plain[count:]
        return count

    def close(self) -> None:
        if not self.closed:
            self._source.close()
        super().close()


def _new_object(content_key: bytes, label: str, chunk_log2: int) -> tuple[bytes, AESGCM, bytes, bytes]:
    """A new object's header, cipher, nonce prefix and associated data."""
    fresh = os.urandom(SALT_BYTES + PREFIX_BYTES)
    salt, prefix = fresh[:SALT_BYTES], fresh[SALT_BYTES:]
    header = MAGIC + bytes([chunk_log2]) + salt + prefix
    return header, aes_gcm(object_key(content_key, salt)), prefix, header + label.encode("utf-8")


def _opened_object(header: bytes, content_key: bytes, label: str, what: str) -> tuple[AESGCM, bytes, bytes, int]:
    """The cipher, nonce prefix, associated data and chunk size of an object starting with ``header``."""
    if len(header) < HEADER_BYTES or header[: len(MAGIC)] != MAGIC:
        raise IntegrityError(f"{what} is not sealed with this archive's format (damaged or not encrypted)")
    chunk_log2 = header[len(MAGIC)]
    if not 10 <= chunk_log2 <= _MAX_CHUNK_LOG2:
        raise IntegrityError(f"{what} is damaged: its header names an impossible chunk size")
    salt = header[len(MAGIC) + 1 : len(MAGIC) + 1 + SALT_BYTES]
    aead = aes_gcm(object_key(content_key, salt))
    return aead, header[-PREFIX_BYTES:], header + label.encode("utf-8"), 1 << chunk_log2


def _decrypt(aead: AESGCM, prefix: bytes, counter: int, last: bool, sealed: bytes, aad: bytes, what: str) -> bytes:
    from cryptography.exceptions import InvalidTag  # loaded with the cipher already

    try:
        return aead.decrypt(_nonce(prefix, counter, last), sealed, aad)
    except InvalidTag:
        raise IntegrityError(
            f"{what} is damaged, truncated or not this object (chunk {counter} fails authentication)"
        ) from None


def read_exactly(source: BinaryIO, count: int) -> bytes:
    """Up to ``count`` bytes: fewer only at the end of ``source`` (a raw read may return short)."""
    data = source.read(count)
    if len(data) in (0, count):
        return data
    parts = [data]
    got = len(data)
    while got < count:
        more = source.read(count - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def seal_bytes(content_key: bytes, label: str, plain: bytes, chunk_log2: int = CHUNK_LOG2) -> bytes:
    """``plain`` sealed as one object (for what is small enough to hold: a blob's frame, a dictionary).

    The same bytes :class:`SealedWriter` writes, without its buffering: most messages are one chunk.
    """
    header, aead, prefix, aad = _new_object(content_key, label, chunk_log2)
    chunk = 1 << chunk_log2
    count = max(1, -(-len(plain) // chunk))
    view = memoryview(plain)
    parts = [header]
    for i in range(count):
        parts.append(aead.encrypt(_nonce(prefix, i, i == count - 1), view[i * chunk : (i + 1) * chunk], aad))
    return b"".join(parts)


def open_bytes(content_key: bytes, label: str, sealed: bytes, what: str) -> bytes:
    """The plaintext of a sealed object held in memory; IntegrityError naming ``what`` if it does not authenticate."""
    aead, prefix, aad, chunk = _opened_object(sealed[:HEADER_BYTES], content_key, label, what)
    body = memoryview(sealed)[HEADER_BYTES:]
    if not body:
        raise IntegrityError(f"{what} is truncated: it ends after its header")
    step = chunk + TAG_BYTES
    count = -(-len(body) // step)
    if count == 1:  # most messages: no copy into a join
        return _decrypt(aead, prefix, 0, True, body, aad, what)
    return b"".join(
        [_decrypt(aead, prefix, i, i == count - 1, body[i * step : (i + 1) * step], aad, what) for i in range(count)]
    )


def open_stream(source: BinaryIO, content_key: bytes, label: str, what: str) -> io.BufferedReader:
    """A buffered streaming reader of a sealed object (``peek`` works; one chunk is decrypted at a time)."""
    return io.BufferedReader(SealedReader(source, content_key, label, what), buffer_size=1 << CHUNK_LOG2)
