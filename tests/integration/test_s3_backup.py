"""An archive whose blobs live in S3 (a real SeaweedFS): backup from a real Dovecot, then every reading path.

What a user of ``store = "s3://…"`` relies on: the messages are in the bucket
(same keys as on disk), nothing of them stays on the local disk, ``ls``,
``search``, ``verify`` and ``restore`` answer as with a local archive, a
catalog snapshot in the bucket holds the whole catalog, and a second run
uploads nothing again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from archiver.store import blob_id_of
from tests.fixtures.cli import Cli
from tests.fixtures.config import ARCHIVE_NAME
from tests.fixtures.mail_server import MailUser, account_toml, fill_for_restore, second_user, state
from tests.fixtures.seaweed import fresh_prefix, object_keys, s3_archive_toml

pytestmark = [pytest.mark.integration, pytest.mark.s3]


def test_backup_into_s3_then_ls_search_verify_restore_byte_exact(
    dovecot, seaweed, mail_user: MailUser, tmp_path: Path, config_file: Callable[..., Path], cli: Cli
) -> None:
    folders = fill_for_restore(dovecot, mail_user, 30, seed=21, folders=3)
    marker = b"From: q@example.org\r\nSubject: quince\r\nMessage-ID: <quince@x>\r\n\r\nquince marmalade\r\n"
    dovecot.append(mail_user.name, "INBOX", marker, flags=("\\Seen",))
    folders["INBOX"] = [*folders.get("INBOX", []), (marker, ("\\Seen",), None)]
    target = second_user(dovecot, mail_user)
    prefix = fresh_prefix("backup")
    accounts = account_toml(dovecot, mail_user, name="acct") + account_toml(dovecot, target, name="dst")
    path = config_file(accounts, s3_archive_toml(seaweed, prefix) + "snapshots_keep = 2\n")

    first = cli(path, "backup", "--account", "acct", "--json")
    assert first.returncode == 0, first.stderr
    (report,) = json.loads(first.stdout)
    assert report["blobs_new"] > 30 and report["index_error"] is None

    keys = object_keys(seaweed, prefix)
    blob_keys = {key.rsplit("/", 1)[-1] for key in keys if key.startswith(f"{prefix}blobs/") and "/dict/" not in key}
    assert blob_id_of(marker) in blob_keys  # the marker's sha256 names its object, as on disk
    assert f"{prefix}blobs/{blob_id_of(marker)[:2]}/{blob_id_of(marker)}" in keys
    local_blobs = [p for p in (tmp_path / ARCHIVE_NAME / "blobs").rglob("*") if p.is_file()]
    assert local_blobs == []  # no message bytes stay on this disk

    snapshots = [key for key in keys if key.startswith(f"{prefix}snapshots/catalog-")]
    assert len(snapshots) == 1
    copy = _snapshot_as_sqlite(seaweed, snapshots[0], tmp_path / "snapshot.sqlite")
    with sqlite3.connect(copy) as db, sqlite3.connect(tmp_path / ARCHIVE_NAME / "catalog.sqlite3") as live:
        query = "SELECT COUNT(*) FROM placements"
        assert db.execute(query).fetchone() == live.execute(query).fetchone() != (0,)

    listed = json.loads(_ok(cli(path, "ls", "--account", "acct", "--json")))
    assert {folder["name"] for folder in listed["folders"]} >= set(folders)
    hits = json.loads(_ok(cli(path, "search", "--json", "quince")))
    assert hits["total"] == 1 and hits["hits"][0]["folders"] == [{"account": "acct", "folder": "INBOX"}]
    _ok(cli(path, "verify"))

    _ok(cli(path, "restore", "--account", "acct", "--to", "dst", "--prefix", "Back"))
    for folder in folders:
        assert state(dovecot, target, f"Back/{folder}") == state(dovecot, mail_user, folder), folder

    again = cli(path, "backup", "--account", "acct", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)[0]["blobs_new"] == 0
    after = object_keys(seaweed, prefix)
    assert {key for key in after if "/blobs/" in key} == {key for key in keys if "/blobs/" in key}
    assert len([key for key in after if "/snapshots/" in key]) == 2  # a snapshot per run, the newest 2 kept
    _ok(cli(path, "backup", "--account", "acct"))
    newest = sorted(key for key in object_keys(seaweed, prefix) if "/snapshots/" in key)
    assert len(newest) == 2 and snapshots[0] not in newest


def _ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.stderr
    return result.stdout


def _snapshot_as_sqlite(seaweed, key: str, target: Path) -> Path:  # type: ignore[no-untyped-def]
    """The snapshot as a user would fetch it: download, ``zstd -d``, open with sqlite3."""
    client = seaweed.client()
    try:
        packed = client.get_object(Bucket="archiver", Key=key)["Body"].read()
    finally:
        client.close()
    target.write_bytes(zstandard.ZstdDecompressor().decompressobj().decompress(packed))
    return target


def test_read_only_keys_verify_search_and_export_but_cannot_back_up(
    dovecot, seaweed, mail_user: MailUser, tmp_path: Path, config_file: Callable[..., Path], cli: Cli
) -> None:
    """What the docs promise an operator with a read-only key: every reading command works, a backup is refused
    in one line, and nothing in the bucket changes."""
    fill_for_restore(dovecot, mail_user, 12, seed=5, folders=2)
    prefix = fresh_prefix("reader")
    _ok(cli(config_file(account_toml(dovecot, mail_user), s3_archive_toml(seaweed, prefix)), "backup"))
    before = object_keys(seaweed, prefix)
    path = config_file(account_toml(dovecot, mail_user), s3_archive_toml(seaweed, prefix, reader=True))
    _ok(cli(path, "verify"))
    assert json.loads(_ok(cli(path, "search", "--json", "the")))["total"] > 0
    _ok(cli(path, "export", "--account", "acct", "--format", "eml", "-o", str(tmp_path / "out")))
    exported = [p.read_bytes() for p in (tmp_path / "out").rglob("*.eml")]
    assert len(exported) >= 12 and all(blob_id_of(raw) in "".join(before) for raw in exported)
    dovecot.append(mail_user.name, "INBOX", b"Subject: new\r\n\r\nnew\r\n")
    refused = cli(path, "backup")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "refused archiver's credentials (AccessDenied)" in refused.stderr, refused.stderr
    assert object_keys(seaweed, prefix) == before
