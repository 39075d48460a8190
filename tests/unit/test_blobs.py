"""The blob store: exact bytes back, dedup, atomic visibility, readable by the zstd tool."""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import shutil
import subprocess

import pytest

from archiver.errors import IntegrityError, StoreError
from archiver.store import BlobStore, blob_id_of
from archiver.store import local as blobs


@pytest.fixture(params=["syncfs", "fsync"])
def store(tmp_path, request):
    """Every store test runs with both durability strategies (syncfs where Linux has it, per-file fsync)."""
    with BlobStore(tmp_path, compression_level=3) as blob_store:
        if request.param == "fsync":
            blob_store._use_syncfs = False
        elif not blob_store._use_syncfs:
            pytest.skip("this platform has no syncfs")
        yield blob_store


def test_round_trip_is_byte_exact_and_deduplicated(store):
    raws = [b"Subject: a\r\n\r\nbody\r\n", b"\x00\xff odd bytes\n\r\n", b"Subject: a\r\n\r\nbody\r\n", b""]
    results = store.put_batch(raws)
    assert [r.blob_id for r in results] == [hashlib.sha256(r).hexdigest() for r in raws]
    assert [r.written for r in results] == [True, True, False, True]
    for raw in raws:
        assert store.get(blob_id_of(raw)) == raw
    again = store.put_batch([raws[0]])
    assert again[0].written is False
    assert sorted(store.iter_ids()) == sorted({blob_id_of(r) for r in raws})


def test_existing_blob_is_never_rewritten(store):
    raw = b"x" * 5000
    [first] = store.put_batch([raw])
    path = store.path_of(first.blob_id)
    before = path.stat().st_mtime_ns, path.stat().st_ino
    store.put_batch([raw])
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before


def test_blob_file_is_a_plain_zstd_frame(store):
    if shutil.which("zstd") is None:
        pytest.skip("zstd command not installed")
    raw = ("Grüße\r\n" * 2000).encode()
    [blob] = store.put_batch([raw])
    path = store.path_of(blob.blob_id)
    assert path.relative_to(store.blob_root).parts == (blob.blob_id[:2], blob.blob_id)
    out = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    assert out == raw
    assert blob.stored_size < len(raw) / 10


def test_corruption_is_detected(store):
    raw = b"hello world " * 100
    [blob] = store.put_batch([raw])
    path = store.path_of(blob.blob_id)
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        store.get(blob.blob_id)
    assert store.check(blob.blob_id) is not None


def test_missing_blob_and_bad_ids(store):
    with pytest.raises(IntegrityError, match="missing"):
        store.get("0" * 64)
    for bad in ("../../etc/passwd", "A" * 64, "0" * 63):
        with pytest.raises(IntegrityError):
            store.path_of(bad)


def test_disk_full_leaves_no_visible_partial_blob(store, monkeypatch):
    real_write = os.write
    calls = {"n": 0}

    def failing_write(fd, data):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", failing_write)
    raws = [os.urandom(2000) for _ in range(3)]
    with pytest.raises(StoreError, match="disk full"):
        store.put_batch(raws)
    monkeypatch.undo()
    assert list(store.iter_ids()) == []
    assert list(store.temp_dir.iterdir()) == []
    store.put_batch(raws)
    assert all(store.get(blob_id_of(r)) == r for r in raws)


def test_sweep_removes_only_dead_writers_temp_files(store):
    dead = store.temp_dir / f"{'a' * 64}.999999999.1.tmp"
    mine = store.temp_dir / f"{'b' * 64}.{os.getpid()}.1.tmp"
    dead.write_bytes(b"partial")
    mine.write_bytes(b"in flight")
    assert store.sweep_temp_of_dead() == 1
    assert not dead.exists() and mine.exists()


@functools.cache
def _generated_small_messages() -> tuple[bytes, ...]:
    from archiver.devtools.sample_mail import generate_mailbox

    small = [s.raw for s in generate_mailbox(1800, seed=5) if len(s.raw) < 64 * 1024]
    return tuple(dict.fromkeys(small))


def _small_messages(count: int) -> list[bytes]:
    return list(_generated_small_messages()[:count])


def _dict_id(store: BlobStore, blob_id: str) -> int:
    import zstandard

    return zstandard.get_frame_parameters(store.path_of(blob_id).read_bytes()[:18]).dict_id


def test_small_messages_get_a_trained_dictionary_once_enough_are_seen(tmp_path):
    from archiver.store.frames import DICT_SAMPLES

    store = BlobStore(tmp_path)
    messages = _small_messages(DICT_SAMPLES + 300)
    early, late = messages[:500], messages[500:]
    store.put_batch(early)
    assert not list(store.dict_dir.glob("*.zdict")) if store.dict_dir.exists() else True
    assert all(_dict_id(store, blob_id_of(raw)) == 0 for raw in early)  # before training: plain frames
    results = []
    for start in range(0, len(late), 200):
        results += store.put_batch(late[start : start + 200])
    (dict_file,) = store.dict_dir.glob("*.zdict")
    trained_after = [r for r in results if _dict_id(store, r.blob_id) != 0]
    assert trained_after and {_dict_id(store, r.blob_id) for r in trained_after} == {int(dict_file.stem)}
    big = os.urandom(200_000)
    assert _dict_id(store, store.put_batch([big])[0].blob_id) == 0  # big messages never use it
    plain = sum(r.stored_size for r in results[: len(results) - len(trained_after)])
    plain_in = sum(r.size for r in results[: len(results) - len(trained_after)])
    with_dict = sum(r.stored_size for r in trained_after) / sum(r.size for r in trained_after)
    assert with_dict < 0.75 * (plain / plain_in)  # the point of it: small mail gets much smaller
    for raw in [*messages, big]:
        assert store.get(blob_id_of(raw)) == raw
        with store.open(blob_id_of(raw)) as reader:
            assert reader.read() == raw
        assert store.check(blob_id_of(raw), len(raw)) is None

    with BlobStore(tmp_path) as reopened:  # a later run writes with the same dictionary, trains no other
        fresh = _small_messages(DICT_SAMPLES + 400)[-50:]
        reopened.put_batch(fresh)
        assert {_dict_id(reopened, blob_id_of(raw)) for raw in fresh} == {int(dict_file.stem)}
        assert list(store.dict_dir.glob("*.zdict")) == [dict_file]
    store.close()


def test_dictionary_frames_read_back_with_the_zstd_tool(tmp_path):
    if shutil.which("zstd") is None:
        pytest.skip("zstd command not installed")
    with BlobStore(tmp_path) as store:
        messages = _small_messages(1100)
        store.put_batch(messages)
        raw = messages[-1]
        path = store.path_of(blob_id_of(raw))
        (dict_file,) = store.dict_dir.glob("*.zdict")
        assert _dict_id(store, blob_id_of(raw)) == int(dict_file.stem)
        out = subprocess.run(["zstd", "-dc", "-D", str(dict_file), str(path)], capture_output=True, check=True)
        assert out.stdout == raw


def test_missing_dictionary_is_reported_not_a_traceback(tmp_path):
    with BlobStore(tmp_path) as store:
        messages = _small_messages(1100)
        store.put_batch(messages[:600])  # stored before there is a dictionary
        store.put_batch(messages[600:])
        (dict_file,) = store.dict_dir.glob("*.zdict")
        blob_id = blob_id_of(messages[-1])
    dict_file.rename(tmp_path / "elsewhere")
    with BlobStore(tmp_path) as store:
        problem = store.check(blob_id, len(messages[-1]))
        assert problem is not None and dict_file.name in problem and "missing" in problem
        with pytest.raises(IntegrityError, match="dictionary"):
            store.get(blob_id)
        assert store.get(blob_id_of(messages[0])) == messages[0]  # frames without it still read


def test_untrainable_samples_leave_small_messages_plain(tmp_path, monkeypatch):
    import zstandard

    from archiver.store import frames as blobs

    def refuse(*args, **kwargs):
        raise zstandard.ZstdError("cannot train dictionary")

    monkeypatch.setattr(blobs.zstandard, "train_dictionary", refuse)
    with BlobStore(tmp_path) as store:
        messages = _small_messages(1100)
        store.put_batch(messages[:600])
        store.put_batch(messages[600:])
        assert not store.dict_dir.exists() or not list(store.dict_dir.glob("*.zdict"))
        assert all(store.get(blob_id_of(raw)) == raw for raw in messages)


def test_archives_made_with_two_shard_levels_keep_them(tmp_path):
    raws = [f"Subject: {n}\r\n\r\nbody {n}\r\n".encode() for n in range(40)]
    older = tmp_path / "older"
    first = blob_id_of(raws[0])
    legacy = older / "blobs" / first[:2] / first[2:4]
    legacy.mkdir(parents=True)
    with BlobStore(tmp_path / "new") as new:  # a new archive: one level, recorded
        new.put_batch(raws)
        assert (new.blob_root / "LAYOUT").read_text() == "shards: 1\n"
        assert new.path_of(first).parent.parent == new.blob_root
    import zstandard

    (legacy / first).write_bytes(zstandard.ZstdCompressor().compress(raws[0]))  # as an older version wrote it
    with BlobStore(older) as store:
        assert (store.blob_root / "LAYOUT").read_text() == "shards: 2\n"
        assert store.path_of(first) == legacy / first and store.get(first) == raws[0]
        store.put_batch(raws)
        assert store.path_of(blob_id_of(raws[5])).parent.parent.parent == store.blob_root
        assert sorted(store.iter_ids()) == sorted(blob_id_of(r) for r in raws)
        assert all(store.check(blob_id_of(r), len(r)) is None for r in raws)
    (older / "blobs" / "LAYOUT").write_text("shards: 3\n")
    with pytest.raises(StoreError, match="unknown blob layout"):
        BlobStore(older)


def _big_message(size: int) -> bytes:
    """Text that compresses, with random bytes in the middle so the frame spans many blocks."""
    return b"Subject: scans\r\n\r\n" + os.urandom(size // 2) + b"line of text\r\n" * (size // 28)


def test_a_streamed_blob_is_the_same_frame_as_a_batched_one(store, tmp_path):
    """put_file (big spooled messages) writes what put_batch writes: id, content size, checksum, zstd -dc."""
    import zstandard

    raw = _big_message(3 * 2**20)
    source = tmp_path / "spooled"
    source.write_bytes(raw)
    with source.open("rb") as handle:
        blob = store.put_file(handle, len(raw))
    assert (blob.blob_id, blob.size, blob.written) == (blob_id_of(raw), len(raw), True)
    path = store.path_of(blob.blob_id)
    assert blob.stored_size == path.stat().st_size
    frame = zstandard.get_frame_parameters(path.read_bytes()[:18])
    assert (frame.content_size, frame.has_checksum, frame.dict_id) == (len(raw), True, 0)
    assert store.get(blob.blob_id) == raw and store.check(blob.blob_id, len(raw)) is None
    if shutil.which("zstd"):
        assert subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout == raw
    assert list(store.temp_dir.iterdir()) == []
    with source.open("rb") as handle:  # the same message again, streamed or batched: deduplicated
        assert store.put_file(handle, len(raw)).written is False
    assert store.put_batch([raw])[0].written is False
    assert list(store.temp_dir.iterdir()) == []


def test_a_streamed_blob_shorter_than_announced_is_refused_and_leaves_nothing(store, tmp_path):
    source = tmp_path / "spooled"
    source.write_bytes(b"Subject: cut\r\n\r\nshort")
    with source.open("rb") as handle, pytest.raises(StoreError, match="announced"):
        store.put_file(handle, 10_000)
    assert list(store.iter_ids()) == [] and list(store.temp_dir.iterdir()) == []


def test_disk_full_while_streaming_leaves_no_visible_partial_blob(store, tmp_path, monkeypatch):
    raw = _big_message(2**20)
    source = tmp_path / "spooled"
    source.write_bytes(raw)
    real_fsync, real_syncfs = os.fsync, blobs._syncfs

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    monkeypatch.setattr(blobs, "_syncfs", full)
    with source.open("rb") as handle, pytest.raises(StoreError, match="disk full"):
        store.put_file(handle, len(raw))
    monkeypatch.setattr(os, "fsync", real_fsync)
    monkeypatch.setattr(blobs, "_syncfs", real_syncfs)
    assert list(store.iter_ids()) == [] and list(store.temp_dir.iterdir()) == []


def test_a_streamed_blob_longer_than_announced_is_refused_and_leaves_nothing(store, tmp_path):
    source = tmp_path / "spooled"
    source.write_bytes(_big_message(2**20))
    with source.open("rb") as handle, pytest.raises(StoreError, match="streamed message"):
        store.put_file(handle, 1000)
    assert list(store.iter_ids()) == [] and list(store.temp_dir.iterdir()) == []
