"""Every blob store keeps the whole :class:`archiver.store.BlobBackend` contract: the local disk and S3 alike.

The behaviour tests run once per backend and envelope: the local disk and S3
(against a real SeaweedFS, the session's ``seaweed`` fixture), each plain and
sealed (``[archive] encryption = true``); a new backend joins by adding a case
to :class:`Place`.
"""

from __future__ import annotations

import inspect
import io
import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from archiver.errors import IntegrityError, StoreError
from archiver.store import BlobBackend, BlobStore, blob_id_of
from archiver.store.envelope import PLAIN, Envelope, SealedEnvelope
from archiver.store.frames import DICT_SAMPLES
from archiver.store.s3 import MULTIPART_THRESHOLD, S3Store
from tests.fixtures.sealed import make_key
from tests.fixtures.seaweed import BUCKET, fresh_prefix, s3_location

CONTRACT = [name for name in vars(BlobBackend) if not name.startswith("_") and callable(getattr(BlobBackend, name))]
BACKENDS = [BlobStore, S3Store]


@dataclass
class Place:
    """Where one test's blobs live, and how to reach around the store to damage them (as a disk or a bucket can)."""

    open: Callable[[], BlobBackend]
    replace_bytes: Callable[[str, bytes], None]
    remove: Callable[[str], None]
    envelope: Envelope

    def replace_frame(self, blob_id: str, frame: bytes) -> None:
        """Store ``frame`` as the blob's object, in the store's envelope (a damage only the key holder could make)."""
        self.replace_bytes(blob_id, self.envelope.seal_blob(blob_id, frame))


@pytest.fixture(
    params=[
        "local",
        "local-sealed",
        pytest.param("s3", marks=pytest.mark.s3),
        pytest.param("s3-sealed", marks=pytest.mark.s3),
    ]
)
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    envelope: Envelope = SealedEnvelope(make_key(tmp_path)) if request.param.endswith("sealed") else PLAIN
    if request.param.startswith("local"):

        def path(blob_id: str) -> Path:
            name = envelope.object_name(blob_id)
            return tmp_path / "blobs" / name[:2] / name

        return Place(
            lambda: BlobStore(tmp_path, envelope=envelope),
            lambda blob_id, data: path(blob_id).write_bytes(data),
            lambda blob_id: path(blob_id).unlink(),
            envelope,
        )
    server = request.getfixturevalue("seaweed")
    prefix = fresh_prefix("contract")
    location = s3_location(server, prefix)
    client = server.client()
    request.addfinalizer(client.close)

    def key(blob_id: str) -> str:
        name = envelope.object_name(blob_id)
        return f"{prefix}blobs/{name[:2]}/{name}"

    return Place(
        lambda: S3Store(location, tmp_path, envelope=envelope),
        lambda blob_id, data: client.put_object(Bucket=BUCKET, Key=key(blob_id), Body=data),
        lambda blob_id: client.delete_object(Bucket=BUCKET, Key=key(blob_id)),
        envelope,
    )


@pytest.fixture
def store(place: Place) -> Iterator[BlobBackend]:
    opened = place.open()
    yield opened
    opened.close()


def _messages(count: int, size: int = 2000) -> list[bytes]:
    return [f"Subject: message {n}\r\n\r\n".encode() + os.urandom(size // 2).hex().encode() for n in range(count)]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda cls: cls.__name__)
def test_every_method_of_the_contract_is_documented_and_matched_exactly(backend: type) -> None:
    assert {"put_batch", "put_file", "get", "open", "exists", "check", "iter_ids", "sweep_temp_of_dead"} <= set(
        CONTRACT
    )
    for name in CONTRACT:
        assert inspect.getdoc(getattr(BlobBackend, name)), f"BlobBackend.{name} states no contract"
        expected = inspect.signature(getattr(BlobBackend, name))
        actual = inspect.signature(getattr(backend, name))
        assert list(actual.parameters) == list(expected.parameters), f"{backend.__name__}.{name}{actual} != {expected}"
        for param in expected.parameters.values():
            assert actual.parameters[param.name].default == param.default, f"{backend.__name__}.{name}: {param.name}"


def test_a_store_missing_a_method_is_not_a_backend() -> None:
    class Partial:
        temp_dir = Path("/nonexistent")

        def get(self, blob_id: str, verify: bool = True) -> bytes:
            return b""

    assert not isinstance(Partial(), BlobBackend)


def test_stores_are_backends_with_a_local_spool(store: BlobBackend) -> None:
    assert isinstance(store, BlobBackend)
    assert store.temp_dir.is_dir()


def test_a_batch_round_trips_once_per_content_in_order(store: BlobBackend) -> None:
    raws = _messages(30)
    results = store.put_batch([*raws, raws[0]])
    assert [r.blob_id for r in results] == [blob_id_of(raw) for raw in [*raws, raws[0]]]
    assert [r.written for r in results] == [True] * 30 + [False]  # the same bytes twice in a batch: stored once
    assert all(0 < r.stored_size < r.size for r in results)
    again = store.put_batch(raws[:5])
    assert not any(r.written for r in again) and [r.stored_size for r in again] == [r.stored_size for r in results[:5]]
    for raw in raws:
        blob_id = blob_id_of(raw)
        assert store.exists(blob_id)
        assert store.get(blob_id) == raw
        with store.open(blob_id) as reader:
            assert reader.read() == raw
        assert store.check(blob_id, len(raw)) is None
    assert sorted(store.iter_ids()) == sorted(blob_id_of(raw) for raw in raws)


def test_a_big_message_streams_in_and_out(place: Place) -> None:
    big = os.urandom(MULTIPART_THRESHOLD // 2) * 3  # past the multipart threshold, compressible by a third
    with place.open() as store:
        stored = store.put_file(io.BytesIO(big), len(big))
        assert stored.blob_id == blob_id_of(big) and stored.written and stored.size == len(big)
        assert not store.put_file(io.BytesIO(big), len(big)).written
        with store.open(stored.blob_id) as reader:
            chunks = iter(lambda: reader.read(1 << 20), b"")
            assert blob_id_of(b"".join(chunks)) == stored.blob_id
        assert store.check(stored.blob_id, len(big)) is None
        assert not list(store.temp_dir.glob("stream.*"))  # no spooled frame left in flight
    assert list(store.temp_dir.iterdir()) == []  # nor anything else once the store is closed


def test_a_message_shorter_than_announced_is_refused(store: BlobBackend) -> None:
    with pytest.raises(StoreError, match="announced"):
        store.put_file(io.BytesIO(b"short"), 10)
    assert list(store.iter_ids()) == []


def test_missing_and_damaged_blobs_are_integrity_errors_never_bytes(store: BlobBackend, place: Place) -> None:
    raws = _messages(3)
    ids = [r.blob_id for r in store.put_batch(raws)]
    absent = blob_id_of(b"never stored")
    assert not store.exists(absent)
    with pytest.raises(IntegrityError, match="missing"):
        store.get(absent)
    assert "missing" in (store.check(absent) or "")
    assert "catalog says" in (store.check(ids[0], len(raws[0]) + 1) or "")
    place.replace_frame(ids[1], b"not a zstd frame at all")
    place.replace_frame(ids[0], zstandard.ZstdCompressor().compress(raws[2]))  # a sound frame of other bytes
    place.remove(ids[2])
    assert store.check(ids[1]) is not None  # check reads what is stored, whoever asks
    assert "does not match" in (store.check(ids[0]) or "")
    assert not store.exists(ids[2]) and "missing" in (store.check(ids[2]) or "")
    with place.open() as reader:  # another process's view (the writer may still hold what it wrote)
        with pytest.raises(IntegrityError, match="corrupt"):
            reader.get(ids[1])
        with pytest.raises(IntegrityError, match="does not match"):
            reader.get(ids[0])
        assert reader.get(ids[0], verify=False) == raws[2]
        with pytest.raises(IntegrityError, match="missing"):
            reader.get(ids[2])


def test_small_messages_share_a_dictionary_that_a_new_store_reads(place: Place) -> None:
    raws = [f"From: a{n}@example.org\r\nSubject: note {n}\r\n\r\nshort body {n}\r\n".encode() for n in range(1200)]
    with place.open() as store:
        for start in range(0, len(raws), 300):
            store.put_batch(raws[start : start + 300])
    assert len(raws) > DICT_SAMPLES
    with place.open() as store:  # the dictionary is found again, from the store alone
        assert len(store.dictionary_ids()) == 1  # type: ignore[attr-defined]  (both backends' DictionaryShelf)
        assert all(store.get(blob_id_of(raw)) == raw for raw in raws[::50] + raws[-5:])
        assert store.check(blob_id_of(raws[-1]), len(raws[-1])) is None


def test_another_process_reopens_the_store_through_its_opener(store: BlobBackend) -> None:
    raw = _messages(1)[0]
    store.put_batch([raw])
    opener = pickle.loads(pickle.dumps(store.opener()))  # what a spawned index worker receives
    with opener() as again:
        assert again.get(blob_id_of(raw)) == raw


def test_the_sweep_removes_dead_writers_spool_files_only(store: BlobBackend) -> None:
    dead = store.temp_dir / "stream.999999999.1.tmp"
    live = store.temp_dir / f"stream.{os.getpid()}.1.tmp"
    dead.write_bytes(b"x")
    live.write_bytes(b"x")
    assert store.sweep_temp_of_dead() >= 1
    assert not dead.exists() and live.exists()
