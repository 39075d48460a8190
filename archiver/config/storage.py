"""Where the blobs live: ``[archive] store = "s3://bucket/prefix"`` and the keys that go with it.

Without ``store`` the blobs stay on the local disk under ``[archive] path``
(the default).  With it they go to an S3-compatible object store; the catalog,
the index and the temporary spool stay local under ``path`` either way.  The
keys are read by :func:`read_store_location` from whatever table holds them, so
a later ``[[replicas]]`` table can name another bucket with the very same keys.

Credentials are read as passwords are (a literal, ``_file``, ``_command`` or
``_env``), resolved late (:meth:`PasswordSource.resolve`), and never shown; with
neither key the client library's own chain applies (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, ``~/.aws/credentials``, an instance role).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from archiver.config.reader import Table
from archiver.config.secrets import PasswordSource, read_password_keys

ACCESS_KEY_KEYS = {
    "access_key_id": "value",
    "access_key_id_file": "file",
    "access_key_id_command": "command",
    "access_key_id_env": "env",
}
SECRET_KEY_KEYS = {
    "secret_access_key": "value",
    "secret_access_key_file": "file",
    "secret_access_key_command": "command",
    "secret_access_key_env": "env",
}
#: The keys this module reads, for the table's list of valid keys.
STORE_KEYS = (
    "store", "endpoint", "region", *ACCESS_KEY_KEYS, *SECRET_KEY_KEYS, "store_timeout", "upload_workers",
    "snapshots_keep",
)  # fmt: skip

DEFAULT_UPLOAD_WORKERS = 8
DEFAULT_STORE_TIMEOUT = 60
DEFAULT_SNAPSHOTS_KEEP = 7
# S3's own bucket naming rule (3 to 63 lowercase letters, digits, dots, hyphens).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class S3Location:
    """A bucket and key prefix on an S3-compatible server, and how to reach and log in to it.

    ``prefix`` is empty or ends with ``/``; every object archiver writes is under it.
    ``str()`` gives the ``s3://`` URL, never a credential.
    """

    bucket: str
    prefix: str = ""
    endpoint: str | None = None  # None: AWS, from the region
    region: str | None = None
    access_key: PasswordSource | None = None
    secret_key: PasswordSource | None = None
    timeout: int = DEFAULT_STORE_TIMEOUT  # seconds for a connection and for each read of an answer
    workers: int = DEFAULT_UPLOAD_WORKERS  # uploads in flight at once
    snapshots_keep: int = DEFAULT_SNAPSHOTS_KEEP  # catalog snapshots kept in the bucket, newest first

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def read_store_location(table: Table) -> S3Location | None:
    """The ``store`` of ``table`` and its companion keys, checked now; None for the local disk (no ``store``)."""
    url = table.string("store")
    given = [key for key in STORE_KEYS[1:] if table.has(key)]
    if url is None:
        if given:
            raise table.fail(given[0], 'only used with store = "s3://bucket/prefix" (the blobs are on the local disk)')
        return None
    parts = urlsplit(url)
    if parts.scheme != "s3" or parts.query or parts.fragment or "@" in parts.netloc:
        raise table.error("store", 'an object store URL such as "s3://bucket/prefix"', url)
    if not _BUCKET.fullmatch(parts.netloc) or ".." in parts.netloc:
        raise table.error("store", "a bucket name of 3 to 63 lowercase letters, digits, dots or hyphens", parts.netloc)
    prefix = "/".join(segment for segment in parts.path.split("/") if segment)
    if any(segment in (".", "..") for segment in prefix.split("/")):
        raise table.error("store", "a key prefix without . or .. segments", parts.path)
    endpoint = table.string("endpoint")
    if endpoint is not None:
        scheme = urlsplit(endpoint).scheme
        if scheme not in ("http", "https") or not urlsplit(endpoint).hostname:
            raise table.error("endpoint", 'a URL such as "https://s3.example.net" or "http://127.0.0.1:8333"', endpoint)
    access_key = read_password_keys(table, "", required=False, keys=ACCESS_KEY_KEYS)
    secret_key = read_password_keys(table, "", required=False, keys=SECRET_KEY_KEYS)
    if (access_key is None) != (secret_key is None):
        missing = ", ".join(SECRET_KEY_KEYS if secret_key is None else ACCESS_KEY_KEYS)
        raise table.fail("", f"an access key id goes with its secret access key: add one of {missing}")
    return S3Location(
        bucket=parts.netloc,
        prefix=f"{prefix}/" if prefix else "",
        endpoint=endpoint,
        region=table.string("region"),
        access_key=access_key,
        secret_key=secret_key,
        timeout=table.integer("store_timeout", DEFAULT_STORE_TIMEOUT, low=1, high=3600),
        workers=table.integer("upload_workers", DEFAULT_UPLOAD_WORKERS, low=1, high=64),
        snapshots_keep=table.integer("snapshots_keep", DEFAULT_SNAPSHOTS_KEEP, low=1, high=1000),
    )
