"""The local store with encryption at rest: the same bytes back, nothing readable on disk, damage named per blob."""

from __future__ import annotations

import io
import os
import pickle
import tracemalloc
from pathlib import Path

import pytest

from archiver.errors import IntegrityError
from archiver.store import BlobStore, blob_id_of, frames
from archiver.store.envelope import SealedEnvelope
from archiver.store.frames import STREAM_CHUNK
from tests.fixtures.sealed import make_key, sealed_store

DICT_SAMPLES = 300  # trained on fewer samples than an archive waits for: the same code, a fraction of the time


def mail(i: int) -> bytes:
    return (
        f"From: Person {i} <person{i}@secret-domain.example>\r\nTo: boss@secret-domain.example\r\n"
        f"Subject: Acquisition codename Heron {i}\r\n\r\nThe board meets on day {i}; keep the Heron file closed.\r\n"
    ).encode()


@pytest.fixture(autouse=True)
def _fewer_dictionary_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames, "DICT_SAMPLES", DICT_SAMPLES)


@pytest.fixture
def store(tmp_path: Path):
    with sealed_store(tmp_path) as blob_store:
        yield blob_store


def all_bytes_under(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_small_and_dictionary_compressed_messages_round_trip_byte_exact(store: BlobStore, tmp_path: Path) -> None:
    messages = [mail(i) for i in range(DICT_SAMPLES + 50)]
    messages.append(b"Subject: no final newline\r\n\r\nends here")
    first = store.put_batch(messages[:DICT_SAMPLES])  # enough samples: the dictionary is trained
    later = store.put_batch(messages[DICT_SAMPLES:])  # these are compressed with it
    assert [b.blob_id for b in first + later] == [blob_id_of(m) for m in messages]
    assert len(list((tmp_path / "blobs" / "dict").glob("*.zdict"))) == 1
    with BlobStore(tmp_path, envelope=store.envelope) as reopened:  # a later process, dictionary read from disk
        for blob, raw in zip(first + later, messages, strict=True):
            assert reopened.get(blob.blob_id) == raw
            with reopened.open(blob.blob_id) as reader:
                assert reader.read() == raw
            assert reopened.check(blob.blob_id, len(raw)) is None
    again = store.put_batch(messages[:3])
    assert [b.written for b in again] == [False] * 3


def test_a_big_streamed_message_round_trips_in_constant_memory(store: BlobStore, tmp_path: Path) -> None:
    big = b"".join(mail(i) + os.urandom(2000) for i in range(9000))  # ~20 MB, many sealed chunks
    spooled = tmp_path / "spool"
    spooled.write_bytes(big)
    with spooled.open("rb") as source:
        blob = store.put_file(source, len(big))
    assert blob.blob_id == blob_id_of(big) and blob.written
    tracemalloc.start()
    try:
        with store.open(blob.blob_id) as reader:
            got = [blob_id_of(chunk) for chunk in iter(lambda: reader.read(STREAM_CHUNK), b"")]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * STREAM_CHUNK  # never the whole message
    assert got and store.get(blob.blob_id) == big
    assert store.put_file(io.BytesIO(big), len(big)).written is False  # deduplicated by its keyed name


def test_a_source_that_cannot_seek_is_stored_too(store: BlobStore) -> None:
    raw = mail(1) * 5000

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.inner = io.BytesIO(raw)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
            data = self.inner.read(len(buffer))
            buffer[: len(data)] = data
            return len(data)

    blob = store.put_file(Pipe(), len(raw))  # type: ignore[arg-type]
    assert store.get(blob.blob_id) == raw
    assert list(store.temp_dir.iterdir()) == []


def test_nothing_of_a_message_is_readable_on_disk(tmp_path: Path) -> None:
    messages = [mail(i) for i in range(DICT_SAMPLES + 10)]
    with BlobStore(tmp_path / "plain") as plain:  # the control: the same scan finds the words in a plain store
        plain.put_batch(messages)
    with sealed_store(tmp_path / "sealed") as sealed:
        stored = sealed.put_batch(messages)
    needles = [b"secret-domain", b"Heron", b"Acquisition", b"board meets"]
    plain_bytes, sealed_bytes = all_bytes_under(tmp_path / "plain" / "blobs"), all_bytes_under(tmp_path / "sealed")
    assert all(needle in plain_bytes for needle in needles)
    assert [needle for needle in needles if needle in sealed_bytes] == []
    names = {p.name for p in (tmp_path / "sealed" / "blobs").rglob("*") if p.is_file() and len(p.name) == 64}
    assert len(names) == len(stored) and names.isdisjoint(b.blob_id for b in stored)  # names are not the ids
    dictionary = next((tmp_path / "sealed" / "blobs" / "dict").glob("*.zdict")).read_bytes()
    assert not dictionary.startswith(b"\x37\xa4\x30\xec")  # not a readable zstd dictionary


def test_iter_ids_finds_the_ids_behind_the_names(store: BlobStore) -> None:
    stored = store.put_batch([mail(i) for i in range(20)])
    assert sorted(store.iter_ids()) == sorted(b.blob_id for b in stored)


def test_damage_is_an_integrity_error_naming_the_blob(store: BlobStore) -> None:
    big = os.urandom(300_000)
    flipped, cut, first, second = (b.blob_id for b in store.put_batch([mail(1), big, mail(2), mail(3)]))
    path = store.path_of(flipped)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    store.path_of(cut).write_bytes(store.path_of(cut).read_bytes()[:100_000])
    a, b = store.path_of(first).read_bytes(), store.path_of(second).read_bytes()
    store.path_of(first).write_bytes(b)
    store.path_of(second).write_bytes(a)
    for blob_id in (flipped, cut, first, second):
        with pytest.raises(IntegrityError, match=blob_id):
            store.get(blob_id)
        with pytest.raises(IntegrityError, match=blob_id), store.open(blob_id) as reader:
            reader.read()
        assert blob_id in (store.check(blob_id) or "")
    # Listing reads the first chunk only: the cut blob's is sound; the others are skipped, never listed as another id.
    assert set(store.iter_ids()) == {cut}


def test_another_archives_key_reads_nothing(store: BlobStore, tmp_path: Path) -> None:
    blob = store.put_batch([mail(5)])[0]
    stranger = make_key(tmp_path / "other")
    with BlobStore(store.root, envelope=SealedEnvelope(stranger)) as wrong:
        assert not wrong.exists(blob.blob_id)  # another key, another name
        wrong.path_of(blob.blob_id).parent.mkdir(exist_ok=True)
        os.replace(store.path_of(blob.blob_id), wrong.path_of(blob.blob_id))
        with pytest.raises(IntegrityError, match=blob.blob_id):
            wrong.get(blob.blob_id)


def test_a_missing_dictionary_or_a_plain_one_is_reported(tmp_path: Path) -> None:
    with sealed_store(tmp_path) as store:
        store.put_batch([mail(i) for i in range(DICT_SAMPLES)])
        small = store.put_batch([mail(99_999)])[0]
    dictionary = next((tmp_path / "blobs" / "dict").glob("*.zdict"))
    dictionary.write_bytes(b"\x37\xa4\x30\xec" + os.urandom(500))
    with BlobStore(tmp_path, envelope=store.envelope) as reopened:
        assert "compression dictionary" in (reopened.check(small.blob_id) or "")


def test_the_unlocked_envelope_travels_to_index_worker_processes(store: BlobStore) -> None:
    """Index workers (forked or spawned) get the envelope pickled: they read blobs without asking for the key."""
    blob = store.put_batch([mail(7)])[0]
    travelled = pickle.loads(pickle.dumps(store.envelope))
    with BlobStore(store.root, envelope=travelled) as worker:
        assert worker.get(blob.blob_id) == mail(7)
    assert travelled.key.content_key.hex() not in repr(travelled.key) and travelled.key_id == store.envelope.key_id
