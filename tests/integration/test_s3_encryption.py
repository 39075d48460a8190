"""An encrypted archive whose blobs live in S3 (a real SeaweedFS): nothing of the mail in the bucket, all of it back.

Real mail from Dovecot (synthetic secrets and the shared corpus) is backed up
into a bucket with ``encryption = true``; every object the bucket lists (blobs,
dictionaries, catalog snapshots, ``keys.json``) is downloaded and scanned for the
messages' subjects, addresses and body lines, also after every decompression
zstd can make of it, while the same scan of a plain S3 archive of the same mail
finds them all.  The encrypted archive then restores byte-exact, verifies clean,
refuses a wrong passphrase in one line, and a new machine recovers its key from
the bucket alone.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from archiver.store import blob_id_of
from tests.fixtures.cli import Cli
from tests.fixtures.config import write_config
from tests.fixtures.mail_server import MailUser, account_toml, second_user, server_hashes
from tests.fixtures.sealed import (
    SECRET_FOLDERS,
    encryption_toml,
    fill_secret_mailbox,
    needles_of,
    secret_mail,
    write_passphrase,
)
from tests.fixtures.seaweed import BUCKET, fresh_prefix, object_keys, s3_archive_toml

pytestmark = [pytest.mark.integration, pytest.mark.s3]

FOLDERS = SECRET_FOLDERS


def bucket_content(seaweed, prefix: str) -> tuple[bytes, int]:  # type: ignore[no-untyped-def]
    """Every object under ``prefix`` as stored, plus what zstd can decompress of it; and the stored bytes' total."""
    client = seaweed.client()
    try:
        objects = {
            key: client.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in object_keys(seaweed, prefix)
        }
    finally:
        client.close()
    dictionaries = []
    for key, data in objects.items():
        if key.endswith(".zdict"):
            try:
                dictionaries.append(zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_FULLDICT))
                dictionaries[-1].dict_id()
            except zstandard.ZstdError:
                dictionaries.pop()
    parts = []
    for data in objects.values():
        parts.append(data)
        for dictionary in [None, *dictionaries]:
            try:
                parts.append(zstandard.ZstdDecompressor(dict_data=dictionary).decompressobj().decompress(data))
                break
            except zstandard.ZstdError:
                continue
    return b"".join(parts), sum(len(data) for data in objects.values())


def test_an_encrypted_s3_backup_shows_nothing_in_the_bucket_and_restores_byte_exact(
    dovecot, seaweed, mail_user: MailUser, tmp_path: Path, cli: Cli
) -> None:
    synthetic, real, on_server = fill_secret_mailbox(dovecot, mail_user)
    target = second_user(dovecot, mail_user)
    accounts = account_toml(dovecot, mail_user, name="acct") + account_toml(dovecot, target, name="target")
    passphrase = write_passphrase(tmp_path / "passphrase")
    sealed_prefix, plain_prefix = fresh_prefix("sealed"), fresh_prefix("plain")
    (tmp_path / "sealed").mkdir()
    (tmp_path / "plain").mkdir()
    sealed_toml = s3_archive_toml(seaweed, sealed_prefix) + encryption_toml(passphrase)
    config = write_config(tmp_path / "sealed", accounts, sealed_toml)
    plain = write_config(tmp_path / "plain", accounts, s3_archive_toml(seaweed, plain_prefix))  # the control

    _ok(cli(config, "key", "init"))
    for path in (config, plain):
        _ok(cli(path, "backup", "--account", "acct"))

    keys = object_keys(seaweed, sealed_prefix)
    assert f"{sealed_prefix}keys.json" in keys  # the bucket alone (and the passphrase) is enough to recover
    assert [key for key in keys if "/snapshots/" in key and key.endswith(".sqlite.zst.sealed")]
    names = {key.rsplit("/", 1)[-1] for key in keys}
    assert not names & {blob_id_of(raw) for raw in synthetic + real}  # object names are keyed: no content hash

    needles = sorted({n for raw in synthetic + real for n in needles_of(raw)})
    assert len(needles) >= 3 * len(synthetic)
    in_plain, _ = bucket_content(seaweed, plain_prefix)
    assert [n for n in needles if n not in in_plain] == []  # the scan finds every needle where there is one
    in_sealed, stored = bucket_content(seaweed, sealed_prefix)
    assert [n for n in needles if n in in_sealed] == []
    assert len(in_sealed) == stored  # zstd could decompress nothing of it
    local_blobs = [p for p in (tmp_path / "sealed" / "archive" / "blobs").rglob("*") if p.is_file()]
    assert local_blobs == []  # and no copy of a message stays on this disk after the run

    _ok(cli(config, "restore", "--account", "acct", "--to", "target", "--in-place"))
    assert Counter(server_hashes(dovecot, target, FOLDERS).values()) == on_server
    assert "Zeppelin merger codename Aurora-7" in _ok(cli(config, "search", "Aurora-7"))
    assert "OK" in _ok(cli(config, "verify"))

    wrong = write_passphrase(tmp_path / "wrong", "not the passphrase at all")
    wrong_toml = s3_archive_toml(seaweed, sealed_prefix) + encryption_toml(wrong)
    refused = cli(write_config(tmp_path / "sealed", accounts, wrong_toml), "verify")
    write_config(tmp_path / "sealed", accounts, sealed_toml)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "wrong passphrase" in refused.stderr, refused.stderr

    (tmp_path / "new-machine").mkdir()  # the bucket and the passphrase, nothing else
    elsewhere = write_config(tmp_path / "new-machine", accounts, sealed_toml)
    _ok(cli(elsewhere, "key", "check"))
    exported = tmp_path / "eml"
    _ok(cli(config, "export", "--account", "acct", "--format", "eml", "-o", str(exported)))
    assert Counter(hashlib.sha256(p.read_bytes()).hexdigest() for p in exported.rglob("*.eml")) == on_server


def test_the_bucket_keeps_the_rotated_key_file_and_a_plain_config_cannot_write_into_it(
    dovecot, seaweed, mail_user: MailUser, tmp_path: Path, config_file: Callable[..., Path], cli: Cli
) -> None:
    dovecot.append(mail_user.name, "INBOX", secret_mail(1))
    prefix = fresh_prefix("mixed")
    passphrase = write_passphrase(tmp_path / "passphrase")
    archive_toml = s3_archive_toml(seaweed, prefix) + encryption_toml(passphrase)
    sealed = config_file(account_toml(dovecot, mail_user), archive_toml)
    _ok(cli(sealed, "key", "init"))
    assert _bucket_key_file(seaweed, prefix) == (tmp_path / "archive" / "keys.json").read_bytes()
    new = write_passphrase(tmp_path / "new-passphrase", "a new passphrase, long enough")
    _ok(cli(sealed, "key", "rotate", "--new-passphrase-file", str(new)))
    assert _bucket_key_file(seaweed, prefix) == (tmp_path / "archive" / "keys.json").read_bytes()  # old wrapping gone
    (tmp_path / "elsewhere").mkdir()
    twice = cli(write_config(tmp_path / "elsewhere", "", archive_toml), "key", "init")
    assert twice.returncode != 0 and "already holds an encrypted archive" in twice.stderr, twice.stderr
    before = object_keys(seaweed, prefix)
    (tmp_path / "other").mkdir()
    plain = write_config(tmp_path / "other", account_toml(dovecot, mail_user), s3_archive_toml(seaweed, prefix))
    refused = cli(plain, "backup")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "encryption is off" in refused.stderr, refused.stderr
    assert object_keys(seaweed, prefix) == before


def _bucket_key_file(seaweed, prefix: str) -> bytes:  # type: ignore[no-untyped-def]
    client = seaweed.client()
    try:
        return client.get_object(Bucket=BUCKET, Key=f"{prefix}keys.json")["Body"].read()
    finally:
        client.close()


def _ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
