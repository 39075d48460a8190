"""The blob store: exact bytes back, dedup, atomic visibility, readable by the zstd tool."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess

import pytest

from archiver.errors import IntegrityError, StoreError
from archiver.store import BlobStore, blob_id_of


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
    assert path.relative_to(store.blob_root).parts[:2] == (blob.blob_id[:2], blob.blob_id[2:4])
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
