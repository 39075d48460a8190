"""``[archive] store = "s3://…"`` and its keys: what a user writes, what archiver understands, and one clear
line for each mistake (never the secret)."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.config import S3Location, config_from_toml_text
from archiver.errors import ConfigError, SecretError

SOURCE = Path("/srv/archiver/config.toml")


def store_of(keys: str) -> S3Location | None:
    return config_from_toml_text(f'[archive]\npath = "/a"\n{keys}\n', SOURCE).archive.store


def error_of(keys: str) -> str:
    with pytest.raises(ConfigError) as info:
        store_of(keys)
    return str(info.value)


def test_without_store_the_blobs_stay_on_the_local_disk() -> None:
    assert store_of("") is None


def test_a_bucket_and_prefix_with_an_endpoint_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_SECRET", "sekrit-value-1")
    store = store_of(
        'store = "s3://mail-archive//team/archiver/"\nendpoint = "http://127.0.0.1:8333"\n'
        'access_key_id = "KEYID"\nsecret_access_key_env = "S3_SECRET"\nupload_workers = 4\nsnapshots_keep = 3'
    )
    assert store is not None
    assert (store.bucket, store.prefix, store.endpoint) == ("mail-archive", "team/archiver/", "http://127.0.0.1:8333")
    assert (store.workers, store.snapshots_keep, store.timeout) == (4, 3, 60)
    assert str(store) == "s3://mail-archive/team/archiver/"
    assert store.access_key is not None and store.secret_key is not None
    assert store.secret_key.resolve() == "sekrit-value-1"
    assert "KEYID" not in repr(store) and "sekrit" not in repr(store)
    assert store_of('store = "s3://mail-archive"').prefix == ""  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ('store = "/mnt/nas/archive"', 'archive.store: expected an object store URL such as "s3://bucket/prefix"'),
        ('store = "s3://Mail_Archive/x"', "archive.store: expected a bucket name of 3 to 63 lowercase letters"),
        ('store = "s3://ab"', "expected a bucket name"),
        ('store = "s3://key:secret@bucket/x"', "expected an object store URL"),
        ('store = "s3://bucket/a/../b"', "without . or .. segments"),
        ('endpoint = "http://127.0.0.1:8333"', 'archive.endpoint: only used with store = "s3://bucket/prefix"'),
        ('store = "s3://bucket"\nendpoint = "127.0.0.1:8333"', "archive.endpoint: expected a URL such as"),
        ('store = "s3://bucket"\naccess_key_id = "K"', "an access key id goes with its secret access key"),
        ('store = "s3://bucket"\nsecret_access_key = "S"\naccess_key_id = "K"\naccess_key_id_env = "X"', "exactly one"),
        ('store = "s3://bucket"\nupload_workers = 0', "archive.upload_workers: expected an integer from 1 to 64"),
        ('store = "s3://bucket"\nstore_timout = 5', "did you mean 'store_timeout'"),
    ],
)
def test_each_mistake_is_one_line_naming_the_key(keys: str, says: str) -> None:
    message = error_of(keys)
    assert message.startswith(f"{SOURCE}: ") and "\n" not in message
    assert says in message, message


def test_a_secret_that_cannot_be_read_names_its_key_not_an_account() -> None:
    store = store_of('store = "s3://bucket"\naccess_key_id = "K"\nsecret_access_key_env = "NOT_SET_ANYWHERE_42"')
    assert store is not None and store.secret_key is not None
    with pytest.raises(SecretError) as info:
        store.secret_key.resolve()
    assert str(info.value) == "archive.secret_access_key_env: environment variable NOT_SET_ANYWHERE_42 is not set"
