"""What the S3 store does beyond the BlobBackend contract (tests/unit/test_store_contract.py), on a real SeaweedFS.

It keeps what it uploaded in the local spool for the rest of the run (the index update reads it there instead
of downloading it again), ``check`` never trusts that copy, and nothing of it outlives the run; the sweep
aborts multipart uploads a dead writer abandoned, and no others."""

from __future__ import annotations

import io
import os
import pickle
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archiver.errors import ArchiveKeyError, IntegrityError
from archiver.store import blob_id_of, s3
from archiver.store.envelope import PLAIN, SealedEnvelope
from archiver.store.s3 import S3Store
from archiver.store.snapshots import fetch_snapshot, keep_snapshot
from tests.fixtures.sealed import make_key
from tests.fixtures.seaweed import BUCKET, fresh_prefix, s3_location

pytestmark = pytest.mark.s3


def test_a_run_reads_back_what_it_uploaded_without_the_network_and_leaves_nothing(seaweed, tmp_path: Path) -> None:
    prefix = fresh_prefix("readback")
    small = [f"Subject: {n}\r\n\r\n".encode() + os.urandom(3000) for n in range(5)]
    big = os.urandom(3 * 2**20)
    with S3Store(s3_location(seaweed, prefix), tmp_path) as writer:
        ids = [r.blob_id for r in writer.put_batch(small)] + [writer.put_file(io.BytesIO(big), len(big)).blob_id]
        client = seaweed.client()
        for blob_id in ids:  # gone from the bucket: only the run's own copy can answer now
            client.delete_object(Bucket=BUCKET, Key=f"{prefix}blobs/{blob_id[:2]}/{blob_id}")
        client.close()
        assert [writer.get(blob_id) for blob_id in ids] == [*small, big]
        with writer.open(ids[-1]) as reader:
            assert blob_id_of(reader.read()) == ids[-1]
        with pickle.loads(pickle.dumps(writer.opener()))() as worker:  # an index worker process's store
            assert worker.get(ids[0]) == small[0]
        assert all("missing" in (writer.check(blob_id) or "") for blob_id in ids)  # verify asks the bucket
        assert any(tmp_path.glob("blobs/tmp/cache.*"))
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []  # closed: the copies are gone
    with S3Store(s3_location(seaweed, prefix), tmp_path) as later, pytest.raises(Exception, match="missing"):
        later.get(ids[0])  # a later run has no copy: it reads the bucket


def test_the_sweep_aborts_abandoned_multipart_uploads_only(seaweed, tmp_path: Path, monkeypatch) -> None:
    prefix = fresh_prefix("sweep")
    client = seaweed.client()
    try:
        old = client.create_multipart_upload(Bucket=BUCKET, Key=f"{prefix}blobs/ab/abandoned")["UploadId"]
        with S3Store(s3_location(seaweed, prefix), tmp_path) as store:
            assert store.sweep_temp_of_dead() == 0  # minutes old: maybe another run's, in progress
            monkeypatch.setattr(s3, "STALE_UPLOAD_AGE", -1)  # now it counts as a day old
            assert store.sweep_temp_of_dead() == 1
        uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])
        assert old not in [upload["UploadId"] for upload in uploads]
    finally:
        client.close()


def test_a_damaged_object_under_a_blobs_name_is_replaced_not_trusted(seaweed, tmp_path: Path) -> None:
    """What a server may keep of an upload whose writer was killed must not pass for the blob: the next put
    of the same message finds it, re-hashes it, and replaces it, so the catalog only names whole blobs."""
    prefix = fresh_prefix("repair")
    raw = b"Subject: kept whole\r\n\r\n" + os.urandom(20_000)
    big = os.urandom(2 * 2**20)
    client = seaweed.client()
    try:
        for message in (raw, big):
            key = f"{prefix}blobs/{blob_id_of(message)[:2]}/{blob_id_of(message)}"
            client.put_object(Bucket=BUCKET, Key=key, Body=b"(\xb5/\xfd half a frame")
        with S3Store(s3_location(seaweed, prefix), tmp_path) as store:
            assert store.check(blob_id_of(raw)) is not None
            (stored,) = store.put_batch([raw])
            assert stored.written and store.check(stored.blob_id, len(raw)) is None
            again = store.put_file(io.BytesIO(big), len(big))
            assert again.written and store.check(again.blob_id, len(big)) is None
            assert not store.put_batch([raw])[0].written  # sound now: left alone
    finally:
        client.close()


def test_a_sealed_snapshot_opens_only_with_the_key_and_under_its_own_name(seaweed, tmp_path: Path) -> None:
    """An encrypted archive's catalog snapshot leaves the machine sealed; it reads back whole with the key, is
    refused without it, and a snapshot copied under another name does not open."""
    prefix = fresh_prefix("sealedsnap")
    envelope = SealedEnvelope(make_key(tmp_path))
    catalog = tmp_path / "catalog.copy"
    catalog.write_bytes(b"SQLite format 3\x00" + b"Subject: Heron acquisition\n" * 5000)
    at = datetime(2026, 12, 3, 18, 30, tzinfo=UTC)
    with S3Store(s3_location(seaweed, prefix), tmp_path, envelope=envelope) as store:
        name = keep_snapshot(store, catalog, at, 3, envelope)
        assert name.endswith(".sqlite.zst.sealed") and store.snapshot_names() == [name]
        with store.read_snapshot(name) as stored:
            assert b"Heron" not in stored.read()
        fetch_snapshot(store, name, tmp_path / "back", envelope)
        assert (tmp_path / "back").read_bytes() == catalog.read_bytes()
        with pytest.raises(ArchiveKeyError, match="encrypted"):
            fetch_snapshot(store, name, tmp_path / "plain", PLAIN)
        with store.read_snapshot(name) as stored:  # the same bytes under a later snapshot's name
            store.put_snapshot(name.replace("2026", "2027"), _spooled(tmp_path, stored.read()))
        with pytest.raises(IntegrityError):
            fetch_snapshot(store, name.replace("2026", "2027"), tmp_path / "swapped", envelope)
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def _spooled(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "spooled"
    path.write_bytes(data)
    return path
