"""Blobs in an S3-compatible object store (AWS S3, SeaweedFS, MinIO, Ceph RGW, …), through boto3.

Object layout under the configured prefix: the local store's, key for path, so
a bucket copied to disk (``aws s3 sync``, ``rclone``) is a blob tree the local
store and the ``zstd`` tool read::

    <prefix>blobs/<id[0:2]>/<id>                 one standard zstd frame (archiver.store.frames)
    <prefix>blobs/dict/<dict id>.zdict           a dictionary some small frames use
    <prefix>blobs/LAYOUT                         "shards: 1"
    <prefix>snapshots/catalog-<UTC>.sqlite.zst   catalog snapshots (archiver.archive; ``….sealed`` when encrypted)
    <prefix>keys.json                            an encrypted archive's key file (the data key, wrapped)

With ``[archive] encryption = true`` the store is given the archive's
:class:`~archiver.store.envelope.SealedEnvelope`: a blob's key is then
``<prefix>blobs/<name[0:2]>/<name>`` with ``name`` the keyed HMAC of its id,
and every blob and dictionary object is sealed (the codec applies the envelope,
:mod:`archiver.store.frames`), so the bucket holds nothing readable.

Objects are immutable: a blob is written with ``If-None-Match: *`` so that a
second write of the same id is refused by the server (412) and counted as
already there; a server that ignores the header (found once, when the store
opens) is asked with a HEAD first instead.  Durability: a PUT (or a multipart
upload's completion) answered 200 is stored, so :meth:`S3Store.put_batch` and
:meth:`S3Store.put_file` return only when every object's upload was answered
200, and the caller commits the catalog after that.

Every call has a deadline (connect and read timeouts) and botocore's standard
retry mode (exponential back-off with jitter on 5xx, throttling, timeouts and
dropped connections); what still fails becomes one :class:`StoreError` line
naming the bucket, never a credential.  The temporary spool stays on the local
disk under the archive (``blobs/tmp``).

Two methods are the seams a sealing layer (encryption at rest) wraps:
:meth:`S3Store._object_key` (the name of a blob's object) and the pair
:meth:`S3Store._write_object` / :meth:`S3Store._read_object` (every byte of a
frame, a dictionary or a snapshot crosses them, whole or streamed).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from archiver.config.storage import S3Location
from archiver.errors import ArchiveKeyError, ArchiverError, IntegrityError, StoreError
from archiver.store import sealing
from archiver.store.envelope import PLAIN, Envelope
from archiver.store.frames import FrameCodec, rehash
from archiver.store.keys import KEY_FILE_NAME
from archiver.store.local import BlobId, StoredBlob, blob_id_of, is_blob_id, sweep_dead_writers
from archiver.store.readback import ReadbackCache
from archiver.store.s3_client import (
    CLIENT_ERRORS,
    MISSING_CODES,
    Body,
    error_code,
    make_client,
    s3_error,
    where,
)

log = logging.getLogger("archiver.store")

MULTIPART_THRESHOLD = 16 * 2**20
"""Objects bigger than this go up in parts (a failed part is retried alone, not the whole message)."""
PART_SIZE = 8 * 2**20
"""One part of a multipart upload: the memory :meth:`S3Store.put_file` holds at a time."""
STALE_UPLOAD_AGE = 24 * 3600
"""A multipart upload begun longer ago than this was left by a dead writer; the sweep aborts it."""
_LAYOUT = b"shards: 1\n"
#: What a sealed object's id needs: its header, its first chunk, and one byte of a next (then chunk 0 is not the last).
_SEALED_ID_SPAN = sealing.HEADER_BYTES + (1 << sealing.CHUNK_LOG2) + sealing.TAG_BYTES + 1


class S3Store:
    """A :class:`~archiver.store.BlobBackend` over one bucket and prefix.

    Thread-safe (boto3 clients are); one writer per archive, as for the local store.
    Opening checks the bucket and the credentials (one request); nothing is written
    until a blob is, so read-only credentials can verify, search, restore and export.
    ``readonly`` also keeps the sweep from aborting other writers' uploads.
    """

    def __init__(
        self,
        location: S3Location,
        root: Path,
        compression_level: int = 3,
        readonly: bool = False,
        workers: int | None = None,
        readback: str | None = None,
        envelope: Envelope = PLAIN,
    ) -> None:
        self.location = location
        self.envelope = envelope
        self.root = Path(root)
        self.temp_dir = self.root / "blobs" / "tmp"
        self.readonly = readonly
        self._workers = workers or location.workers
        self._prefix = location.prefix
        self._bucket = location.bucket
        self.codec = FrameCodec(self, compression_level, str(location), envelope)
        try:
            self.temp_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if not readonly:
                raise StoreError(f"cannot create the spool directory {self.temp_dir}: {exc.strerror}") from exc
        self._client = make_client(location, self._workers)
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="s3store")
        self._conditional: bool | None = None  # whether the server honours If-None-Match; learnt at the first write
        self._probe_lock = threading.Lock()
        # What this store uploads, kept locally for this run's own reads (the index update); a reader
        # (an index worker) is given its writer's cache by ``readback``.
        self._cache: ReadbackCache | None = None
        if not readonly:
            self._cache = ReadbackCache.for_writer(self.temp_dir)
        elif readback is not None:
            self._cache = ReadbackCache(self.temp_dir, readback, writable=False)
        try:
            self._check_bucket()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()
        if self._cache is not None:
            self._cache.clear()

    def __enter__(self) -> S3Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def opener(self) -> Callable[[], S3Store]:
        """A picklable function opening this store again for reading (an index worker process), with its envelope."""
        readback = self._cache.owner if self._cache is not None else None
        return functools.partial(S3Store, self.location, self.root, self.codec.level, True, 1, readback, self.envelope)

    # -- names: the one place an object's key is made --------------------------
    def _object_key(self, blob_id: BlobId) -> str:
        if not is_blob_id(blob_id):
            raise IntegrityError(f"not a blob id: {blob_id[:80]!r}")
        name = self.envelope.object_name(blob_id)
        return f"{self._prefix}blobs/{name[0:2]}/{name}"

    def _dictionary_key(self, dict_id: int) -> str:
        return f"{self._prefix}blobs/dict/{dict_id}.zdict"

    # -- bytes: the one place they go up and come down --------------------------
    def _write_object(self, key: str, body: bytes | Path, replace: bool = False) -> bool:
        """Store ``body`` (bytes, or a local file's content) under ``key`` unless an object is there already.

        True when this call stored it, False when the key held an object (never overwritten, unless
        ``replace``: the repair of a damaged object).  Every body goes with its MD5, so a server that
        received other bytes than were sent refuses them.  Files above :data:`MULTIPART_THRESHOLD`
        go up in parts of :data:`PART_SIZE`.
        """
        conditional = not replace and self._conditional_puts()
        if not replace and not conditional and self._head(key) is not None:
            return False
        condition = {"IfNoneMatch": "*"} if conditional else {}
        try:
            if isinstance(body, bytes):
                self._client.put_object(Bucket=self._bucket, Key=key, Body=body, ContentMD5=_md5(body), **condition)
            elif body.stat().st_size <= MULTIPART_THRESHOLD:
                digest = _md5_of_file(body)
                with body.open("rb") as handle:
                    self._client.put_object(Bucket=self._bucket, Key=key, Body=handle, ContentMD5=digest, **condition)
            else:
                self._put_multipart(key, body, condition)
        except CLIENT_ERRORS as exc:
            if error_code(exc) == "PreconditionFailed":
                return False
            raise self._error(exc, "write", key) from None
        return True

    def _read_object(self, key: str, first: int | None = None) -> BinaryIO:
        """A streaming reader of the object under ``key`` (only its ``first`` bytes); IntegrityError if none."""
        ranged = {"Range": f"bytes=0-{first - 1}"} if first else {}
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=key, **ranged)
        except CLIENT_ERRORS as exc:
            if error_code(exc) in MISSING_CODES:
                raise IntegrityError(f"{key} is missing from bucket {self._bucket}") from None
            raise self._error(exc, "read", key) from None
        return Body(answer["Body"], lambda exc: self._error(exc, "read", key))

    def _put_multipart(self, key: str, path: Path, condition: dict[str, str]) -> None:
        """Upload a file in parts, one part in memory at a time; abort the upload on any failure."""
        upload_id = self._client.create_multipart_upload(Bucket=self._bucket, Key=key)["UploadId"]
        try:
            parts = []
            with path.open("rb") as handle:
                while chunk := handle.read(PART_SIZE):
                    number = len(parts) + 1
                    answer = self._client.upload_part(
                        Bucket=self._bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                        ContentMD5=_md5(chunk),
                    )
                    parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            self._client.complete_multipart_upload(
                Bucket=self._bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, **condition
            )
        except BaseException:
            try:
                self._client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
            except CLIENT_ERRORS as exc:
                log.info("could not abort the upload of %s (the sweep will): %s", key, exc)
            raise

    def _head(self, key: str) -> int | None:
        """The size of the object under ``key``, or None when there is none."""
        try:
            return int(self._client.head_object(Bucket=self._bucket, Key=key)["ContentLength"])
        except CLIENT_ERRORS as exc:
            if error_code(exc) in MISSING_CODES:
                return None
            raise self._error(exc, "look up", key) from None

    def _check_bucket(self) -> None:
        """The bucket exists and the credentials work: one clear line now, before any mail is fetched.

        Asked first, as some servers create a bucket on the first upload: a mistyped name must not become one.
        """
        try:
            self._client.head_bucket(Bucket=self._bucket)
        except CLIENT_ERRORS as exc:
            raise self._error(exc, "open", None) from None
        if not self.readonly and not self.envelope.sealed and self._head(self._key_file_key()) is not None:
            raise ArchiveKeyError(
                f"{self.location} holds an encrypted archive ({KEY_FILE_NAME}) but [archive] encryption is off: "
                "set encryption = true and its passphrase or key_file"
            )

    def _conditional_puts(self) -> bool:
        """Whether the server refuses to overwrite under ``If-None-Match: *`` (found once, at the first write).

        Writes ``blobs/LAYOUT`` with the header twice at most: a server that
        honours it refuses the second write (or the first, on an existing
        store); one that ignores it accepts both (the same bytes).
        """
        if self._conditional is not None:
            return self._conditional
        with self._probe_lock:
            if self._conditional is None:
                self._conditional = self._probe_conditional()
        return self._conditional

    def _probe_conditional(self) -> bool:
        key = f"{self._prefix}blobs/LAYOUT"
        for _ in range(2):
            try:
                self._client.put_object(Bucket=self._bucket, Key=key, Body=_LAYOUT, IfNoneMatch="*")
            except CLIENT_ERRORS as exc:
                if error_code(exc) == "PreconditionFailed":
                    return True
                if error_code(exc) in ("NotImplemented", "501"):
                    break
                raise self._error(exc, "write", key) from None
        log.info("%s ignores If-None-Match: checking each new object's name with a HEAD first", self._where())
        return False

    # -- the codec's DictionaryShelf ---------------------------------------------
    def dictionary_ids(self) -> list[int]:
        names = [key.rsplit("/", 1)[-1] for key in self._list(f"{self._prefix}blobs/dict/")]
        return sorted(int(name[: -len(".zdict")]) for name in names if name.endswith(".zdict") and name[:-6].isdigit())

    def read_dictionary(self, dict_id: int) -> bytes:
        try:
            with self._read_object(self._dictionary_key(dict_id)) as reader:
                return reader.read()
        except IntegrityError:
            raise IntegrityError(f"compression dictionary {dict_id}.zdict is missing from {self.location}") from None

    def write_dictionary(self, dict_id: int, data: bytes) -> None:
        key = self._dictionary_key(dict_id)
        if not self._write_object(key, data):
            with self._read_object(key) as reader:
                held = reader.read()
            if not self._same_dictionary(dict_id, held, data):  # a damaged copy: no frame could be read with it
                log.warning("dictionary %s in %s was damaged: replacing it", key, self._where())
                self._write_object(key, data, replace=True)

    def _same_dictionary(self, dict_id: int, held: bytes, data: bytes) -> bool:
        """Whether the stored ``held`` is the dictionary ``data`` holds (sealed twice, their bytes differ)."""
        try:
            return self.envelope.open_dictionary(dict_id, held) == self.envelope.open_dictionary(dict_id, data)
        except IntegrityError:
            return False

    # -- writing ---------------------------------------------------------------
    def put_batch(self, raws: Sequence[bytes]) -> list[StoredBlob]:
        """Upload every new message of a batch in parallel; return when each upload was answered 200."""
        ids = list(self._pool.map(blob_id_of, raws)) if len(raws) > 1 else [blob_id_of(r) for r in raws]
        fresh: dict[BlobId, bytes] = {}
        for blob_id, raw in zip(ids, raws, strict=True):
            fresh.setdefault(blob_id, raw)
        if fresh:
            self.codec.learn(fresh.values())
        futures = {blob_id: self._pool.submit(self._put_one, blob_id, raw) for blob_id, raw in fresh.items()}
        stored: dict[BlobId, StoredBlob] = {}
        failure: BaseException | None = None
        for blob_id, future in futures.items():
            try:
                stored[blob_id] = future.result()
            except BaseException as exc:  # wait for every upload before raising: none is left running
                failure = failure or exc
        if failure is not None:
            raise failure
        results = []
        for blob_id, raw in zip(ids, raws, strict=True):
            first = stored.pop(blob_id, None)
            results.append(first or StoredBlob(blob_id, len(raw), self._stored_size(blob_id), False))
        return results

    def _put_one(self, blob_id: BlobId, raw: bytes) -> StoredBlob:
        frame = self.codec.compress(blob_id, raw)
        stored = self._store_blob(blob_id, frame, len(raw), len(frame))
        if self._cache is not None:
            self._cache.keep(blob_id, frame)
        return stored

    def _store_blob(self, blob_id: BlobId, body: bytes | Path, size: int, frame_size: int) -> StoredBlob:
        """Upload a blob's frame unless a sound copy is there; a copy found damaged is replaced.

        An object found under the name is downloaded and re-hashed before it is trusted: the
        catalog commits after this returns, so it must never name a blob that is not whole
        (whatever a server kept of an upload whose writer was killed).
        """
        key = self._object_key(blob_id)
        if self._write_object(key, body):
            return StoredBlob(blob_id, size, frame_size, True)
        problem = self.check(blob_id, size)
        if problem is None:
            return StoredBlob(blob_id, size, self._head(key) or 0, False)
        log.warning("%s: replacing it with a whole copy", problem)
        self._write_object(key, body, replace=True)
        return StoredBlob(blob_id, size, frame_size, True)

    def _stored_size(self, blob_id: BlobId) -> int:
        return self._head(self._object_key(blob_id)) or 0

    def put_file(self, source: BinaryIO, size: int) -> StoredBlob:
        """Compress ``source`` into the local spool, then upload it (in parts when big): constant memory."""
        temp = self.temp_dir / f"stream.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            try:
                with contextlib.ExitStack() as stack:
                    source, expected = self.codec.hash_ahead(source, size, self.temp_dir, stack)
                    with temp.open("wb") as handle:
                        blob_id = self.codec.compress_stream(source, size, handle, expected)
            except OSError as exc:
                raise StoreError(f"cannot write {temp}: {exc.strerror or exc}") from exc
            stored = self._store_blob(blob_id, temp, size, temp.stat().st_size)
            if self._cache is not None:
                self._cache.adopt(blob_id, temp)
            return stored
        finally:
            temp.unlink(missing_ok=True)

    # -- reading ---------------------------------------------------------------
    def get(self, blob_id: BlobId, verify: bool = True) -> bytes:
        """The exact bytes of a blob; with ``verify`` the hash is checked too."""
        with self._frame(blob_id, cached=True) as reader:
            frame = reader.read()
        return self.codec.decompress(blob_id, frame, verify)

    def open(self, blob_id: BlobId) -> BinaryIO:
        """A streaming reader of the blob's bytes (constant memory for huge messages)."""
        return self._open(blob_id, cached=True)

    def _frame(self, blob_id: BlobId, cached: bool) -> BinaryIO:
        """The blob's frame: this run's local copy when ``cached`` and there is one, else downloaded."""
        key = self._object_key(blob_id)
        local = self._cache.open(blob_id) if cached and self._cache is not None else None
        if local is not None:
            return local
        try:
            return self._read_object(key)
        except IntegrityError:
            raise IntegrityError(f"blob {blob_id} is missing from {self.location}") from None

    def _open(self, blob_id: BlobId, cached: bool) -> BinaryIO:
        return self.codec.reader(blob_id, self._frame(blob_id, cached))

    def exists(self, blob_id: BlobId) -> bool:
        return self._head(self._object_key(blob_id)) is not None

    def check(self, blob_id: BlobId, expected_size: int | None = None) -> str | None:
        """Download and re-hash one blob (never a local copy); None if sound, else what is wrong.

        StoreError when the store cannot be reached: that is not a verdict on the blob.
        """
        return rehash(lambda each: self._open(each, cached=False), blob_id, expected_size)

    def iter_ids(self) -> Iterator[BlobId]:
        """Every blob in the bucket under the prefix, by listing (in key order).

        A sealed object is named by a keyed hash: its id is read from inside it (a ranged
        download of its first chunk), and one that does not open with this archive's key is
        logged and skipped.
        """
        start = len(self._prefix) + len("blobs/")
        for key in self._list(f"{self._prefix}blobs/"):
            shard, _, name = key[start:].partition("/")
            if not (is_blob_id(name) and shard == name[0:2]):
                continue
            if not self.envelope.sealed:
                yield name
                continue
            with self._read_object(key, first=_SEALED_ID_SPAN) as head:
                found = self.envelope.blob_id_in(name, head)
            if found is None:
                log.warning("%s does not open with this archive's key (damaged, or from another archive)", key)
                continue
            yield found

    def _list(self, prefix: str) -> Iterator[str]:
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
                for item in page.get("Contents", ()):
                    yield item["Key"]
        except CLIENT_ERRORS as exc:
            raise self._error(exc, "list", prefix) from None

    # -- snapshots (catalog copies; the only objects ever deleted) ----------------
    def put_snapshot(self, name: str, path: Path) -> None:
        """Upload a catalog snapshot file as ``snapshots/<name>``."""
        self._write_object(f"{self._prefix}snapshots/{name}", path)

    def snapshot_names(self) -> list[str]:
        """The snapshots in the bucket, oldest first (their names sort by time)."""
        start = len(self._prefix) + len("snapshots/")
        return sorted(key[start:] for key in self._list(f"{self._prefix}snapshots/") if "/" not in key[start:])

    def read_snapshot(self, name: str) -> BinaryIO:
        """A streaming reader of one snapshot's bytes."""
        return self._read_object(f"{self._prefix}snapshots/{name}")

    def put_key_file(self, data: bytes) -> None:
        """Upload ``keys.json`` (replacing the bucket's copy: after a rotation the old wrapping must not stay)."""
        self._write_object(self._key_file_key(), data, replace=True)

    def read_key_file(self) -> bytes | None:
        try:
            with self._read_object(self._key_file_key()) as reader:
                return reader.read()
        except IntegrityError:
            return None

    def _key_file_key(self) -> str:
        return f"{self._prefix}{KEY_FILE_NAME}"

    def delete_snapshot(self, name: str) -> None:
        key = f"{self._prefix}snapshots/{name}"
        try:
            self._client.delete_object(Bucket=self._bucket, Key=key)
        except CLIENT_ERRORS as exc:
            raise self._error(exc, "delete", key) from None

    # -- housekeeping ------------------------------------------------------------
    def sweep_temp_of_dead(self) -> int:
        """Remove dead writers' spool files, and abort multipart uploads abandoned over a day ago.

        An unfinished multipart upload is invisible but billed; a live run's
        upload is minutes old at most, so the age tells a dead one apart.
        """
        removed = sweep_dead_writers(self.temp_dir)
        if self.readonly:
            return removed
        try:
            pages = self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self._bucket, Prefix=self._prefix
            )
            for page in pages:
                for upload in page.get("Uploads", ()):
                    if time.time() - upload["Initiated"].timestamp() > STALE_UPLOAD_AGE:
                        self._client.abort_multipart_upload(
                            Bucket=self._bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        removed += 1
        except CLIENT_ERRORS as exc:
            log.warning("could not list the unfinished uploads of %s: %s", self._where(), self._error(exc, "list"))
        return removed

    def _where(self) -> str:
        return where(self.location)

    def _error(self, exc: Exception, action: str, key: str | None = None) -> ArchiverError:
        return s3_error(exc, self.location, action, key)


def _md5(data: bytes) -> str:
    """The ``Content-MD5`` of a body: the server refuses a body that arrived different (``BadDigest``)."""
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")


def _md5_of_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode("ascii")
