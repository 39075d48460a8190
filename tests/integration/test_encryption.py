"""Encrypted archives end to end: real mail from Dovecot backed up sealed, nothing readable under blobs/, and
search, export, restore and reindex giving back exactly what the server had."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest
import zstandard

from tests.fixtures.config import write_config
from tests.fixtures.mail_server import account_toml, second_user, server_hashes
from tests.fixtures.sealed import (
    SECRET_FOLDERS,
    encryption_toml,
    fill_secret_mailbox,
    needles_of,
    write_passphrase,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FOLDERS = SECRET_FOLDERS


def readable_content(blob_root: Path) -> bytes:
    """Every file under ``blobs/`` as stored, plus what zstd can decompress of it (with the dictionary if any)."""
    dictionaries = [zstandard.ZstdCompressionDict(p.read_bytes()) for p in blob_root.glob("dict/*.zdict")]
    parts = []
    for path in sorted(p for p in blob_root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        parts.append(data)
        for dictionary in [None, *dictionaries]:
            try:
                parts.append(zstandard.ZstdDecompressor(dict_data=dictionary).decompress(data))
                break
            except zstandard.ZstdError:
                continue
    return b"".join(parts)


def test_an_encrypted_backup_of_real_mail_shows_nothing_and_restores_byte_exact(dovecot, mail_user, tmp_path, cli):
    synthetic, real, on_server = fill_secret_mailbox(dovecot, mail_user)
    target = second_user(dovecot, mail_user)
    accounts = account_toml(dovecot, mail_user, name="acct") + account_toml(dovecot, target, name="target")
    passphrase = write_passphrase(tmp_path / "passphrase")
    config = write_config(tmp_path, accounts, archive_extra=encryption_toml(passphrase))
    (tmp_path / "plain").mkdir()
    plain = write_config(tmp_path / "plain", accounts)  # the control: the same mail, not encrypted

    assert cli(config, "key", "init").returncode == 0
    for path in (config, plain):
        done = cli(path, "backup", "--account", "acct")
        assert done.returncode == 0, done.stderr

    needles = sorted({n for raw in synthetic + real for n in needles_of(raw)})
    assert len(needles) >= 3 * len(synthetic)
    in_plain = readable_content(tmp_path / "plain" / "archive" / "blobs")
    assert [n for n in needles if n not in in_plain] == []  # the scan finds every needle where there is one
    in_sealed = readable_content(tmp_path / "archive" / "blobs")
    assert [n for n in needles if n in in_sealed] == []
    assert len(in_sealed) == sum(p.stat().st_size for p in (tmp_path / "archive" / "blobs").rglob("*") if p.is_file())

    exported = tmp_path / "eml"
    done = cli(config, "export", "--account", "acct", "--format", "eml", "-o", str(exported))
    assert done.returncode == 0, done.stderr
    assert Counter(hashlib.sha256(p.read_bytes()).hexdigest() for p in exported.rglob("*.eml")) == on_server

    done = cli(config, "restore", "--account", "acct", "--to", "target", "--in-place")
    assert done.returncode == 0, done.stderr
    assert Counter(server_hashes(dovecot, target, FOLDERS).values()) == on_server

    for command in (["search", "Aurora-7"], ["reindex", "--procs", "2"], ["search", "Aurora-7"]):
        done = cli(config, *command)
        assert done.returncode == 0, done.stderr
    assert "Zeppelin merger codename Aurora-7" in done.stdout
    done = cli(config, "verify")
    assert done.returncode == 0 and "OK" in done.stdout, done.stdout + done.stderr
