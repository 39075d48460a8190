"""The sealed stream format: byte-exact round trips, and every kind of damage refused, never returned as data."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.errors import IntegrityError
from archiver.store import sealing
from archiver.store.envelope import open_sealed, seal_file, seal_stream
from archiver.store.keys import ArchiveKey

KEY = os.urandom(32)
SMALL = 10  # 1 KiB chunks: many chunks from little data
CHUNK = 1 << SMALL
SEALED_CHUNK = CHUNK + sealing.TAG_BYTES


def seal(plain: bytes, label: str = "blob x", chunk_log2: int = SMALL, key: bytes = KEY) -> bytes:
    sink = io.BytesIO()
    with sealing.SealedWriter(sink, key, label, chunk_log2) as writer:
        writer.write(plain)
    return sink.getvalue()


def unseal(sealed: bytes, label: str = "blob x", key: bytes = KEY) -> bytes:
    """Open with both readers (streaming, and in memory as ``get`` does): they must agree, or both refuse."""
    with sealing.open_stream(io.BytesIO(sealed), key, label, "the object") as reader:
        streamed = reader.read()
    assert sealing.open_bytes(key, label, sealed, "the object") == streamed
    return streamed


def assert_refused(sealed: bytes, match: str = "the object", label: str = "blob x", key: bytes = KEY) -> None:
    """Both readers refuse ``sealed`` with an IntegrityError (never bytes)."""
    with (
        pytest.raises(IntegrityError, match=match),
        sealing.open_stream(io.BytesIO(sealed), key, label, "the object") as r,
    ):
        r.read()
    with pytest.raises(IntegrityError, match=match):
        sealing.open_bytes(key, label, sealed, "the object")


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5])
def test_every_size_round_trips_byte_exact(size: int) -> None:
    plain = os.urandom(size)
    sealed = seal(plain)
    chunks = max(1, -(-size // CHUNK))
    assert len(sealed) == sealing.HEADER_BYTES + size + chunks * sealing.TAG_BYTES
    assert unseal(sealed) == plain
    assert unseal(sealing.seal_bytes(KEY, "blob x", plain, SMALL)) == plain  # the in-memory writer: same format


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=5 * CHUNK), st.lists(st.integers(1, 3 * CHUNK), max_size=8))
def test_any_split_of_the_writes_gives_the_same_plaintext(plain: bytes, cuts: list[int]) -> None:
    sink = io.BytesIO()
    with sealing.SealedWriter(sink, KEY, "blob x", SMALL) as writer:
        rest = plain
        for cut in cuts:
            writer.write(rest[:cut])
            rest = rest[cut:]
        writer.write(rest)
    reader = sealing.open_stream(io.BytesIO(sink.getvalue()), KEY, "blob x", "the object")
    got = b""
    while part := reader.read(777):
        got += part
    assert got == plain


def test_the_same_plaintext_seals_differently_and_shows_nothing() -> None:
    plain = b"Subject: quarterly numbers\r\n\r\nThe secret merger is on." * 20
    first, second = seal(plain), seal(plain)
    assert first != second  # a fresh salt and nonce prefix per object
    assert b"merger" not in first and b"quarterly" not in first


def test_a_flipped_bit_anywhere_is_refused() -> None:
    sealed = seal(os.urandom(2 * CHUNK + 100))
    for position in range(len(sealed)):
        damaged = bytearray(sealed)
        damaged[position] ^= 0x10
        assert_refused(bytes(damaged))


def test_an_object_cut_short_anywhere_is_refused() -> None:
    sealed = seal(os.urandom(3 * CHUNK))  # the last chunk is full: a cut at a chunk boundary looks complete
    for length in range(len(sealed)):
        assert_refused(sealed[:length])


@pytest.mark.parametrize(
    "order",
    [[0, 2, 3], [1, 0, 2, 3], [0, 0, 1, 2, 3], [0, 1, 2, 3, 3], [0, 1, 3], [0, 1, 2]],
    ids=["dropped", "swapped", "repeated", "appended", "last moved up", "last dropped"],
)
def test_chunks_dropped_reordered_or_appended_are_refused(order: list[int]) -> None:
    sealed = seal(os.urandom(3 * CHUNK + 10))
    header, body = sealed[: sealing.HEADER_BYTES], sealed[sealing.HEADER_BYTES :]
    chunks = [body[i : i + SEALED_CHUNK] for i in range(0, len(body), SEALED_CHUNK)]
    assert len(chunks) == 4
    assert_refused(header + b"".join(chunks[i] for i in order))


def test_an_object_under_another_name_or_key_is_refused() -> None:
    sealed = seal(b"hello")
    assert_refused(sealed, "fails authentication", label="blob y")
    assert_refused(sealed, "fails authentication", key=os.urandom(32))
    assert_refused(b"\x28\xb5\x2f\xfd plain zstd frame", "not sealed")


def test_a_reader_hands_out_nothing_of_a_damaged_chunk() -> None:
    plain = os.urandom(2 * CHUNK)
    sealed = bytearray(seal(plain))
    sealed[-5] ^= 1  # in the last chunk
    reader = sealing.open_stream(io.BytesIO(bytes(sealed)), KEY, "blob x", "the object")
    assert reader.read(CHUNK) == plain[:CHUNK]  # the first chunk is sound and authenticated
    with pytest.raises(IntegrityError):
        reader.read(1)


def test_a_file_sealed_for_upload_reads_back_only_under_its_name(tmp_path) -> None:
    key = ArchiveKey(os.urandom(32))
    source = tmp_path / "catalog.sqlite3"
    source.write_bytes(os.urandom(300_000))
    sealed = tmp_path / "snapshot.sealed"
    size = seal_file(key, source, sealed, "snapshots/1.sqlite3")
    assert size == sealed.stat().st_size > source.stat().st_size
    with open_sealed(key, sealed.open("rb"), "snapshots/1.sqlite3") as reader:
        assert reader.read() == source.read_bytes()
    with pytest.raises(IntegrityError, match=r"snapshots/2\.sqlite3"):
        open_sealed(key, sealed.open("rb"), "snapshots/2.sqlite3").read()
    sink = io.BytesIO()
    seal_stream(key, io.BytesIO(b""), sink, "empty")
    assert open_sealed(key, io.BytesIO(sink.getvalue()), "empty").read() == b""
