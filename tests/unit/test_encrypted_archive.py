"""An encrypted archive through the commands: a wrong passphrase changes nothing, damage is named by verify,
rotation keeps every blob readable, and plain and sealed blobs are never mixed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archiver.errors import ConfigError
from tests.fixtures.archives import OpenArchive, add_messages
from tests.fixtures.cli import Cli, assert_one_clear_line
from tests.fixtures.config import parse_config, write_config
from tests.fixtures.sealed import encryption_toml, make_key, tree_state, write_passphrase
from tests.fixtures.webdata import closed_imap_account

WHEN = datetime(2024, 1, 1, tzinfo=UTC)
ITEMS = [("INBOX", f"Subject: note {i}\r\nFrom: a{i}@example.org\r\n\r\n{i}\r\n".encode(), (), WHEN) for i in range(30)]


@pytest.fixture
def encrypted(tmp_path: Path, open_archive: OpenArchive) -> tuple[Path, list[str]]:
    """A config of an encrypted archive holding ITEMS (its key made at the cheap test cost); the blob ids."""
    make_key(tmp_path / "archive")
    config = write_config(
        tmp_path, closed_imap_account("acct"), archive_extra=encryption_toml(write_passphrase(tmp_path / "pp"))
    )
    with open_archive(config) as archive:
        add_messages(archive, "acct", ITEMS)
        ids = [blob_id for blob_id, _size in archive.catalog.iter_message_blobs()]
    return config, ids


def test_a_wrong_passphrase_is_one_line_and_changes_nothing(encrypted, tmp_path: Path, cli: Cli) -> None:
    config, _ids = encrypted
    write_passphrase(tmp_path / "pp", "this is not the passphrase")
    before = tree_state(tmp_path / "archive")
    for command in (["backup"], ["key", "rotate", "--new-passphrase-env", "HOME"]):
        assert_one_clear_line(cli(config, *command), "wrong passphrase", "nothing was read or written")
    for command in (["verify"], ["status"], ["search", "note"], ["ls", "--account", "acct"], ["key", "check"]):
        result = cli.invoke(config, *command)
        assert result.exit_code == 2 and "wrong passphrase" in result.stderr, (command, result.output)
    assert tree_state(tmp_path / "archive") == before


def test_verify_names_every_tampered_blob(encrypted, tmp_path: Path, cli: Cli, open_archive: OpenArchive) -> None:
    config, ids = encrypted
    flipped, cut, first, second = ids[:4]
    with open_archive(config, readonly=True) as archive:
        paths = {blob_id: archive.store.path_of(blob_id) for blob_id in ids[:4]}  # type: ignore[attr-defined]
    data = bytearray(paths[flipped].read_bytes())
    data[40] ^= 0x80
    paths[flipped].write_bytes(bytes(data))
    paths[cut].write_bytes(paths[cut].read_bytes()[:-1])
    a, b = paths[first].read_bytes(), paths[second].read_bytes()
    paths[first].write_bytes(b)
    paths[second].write_bytes(a)
    result = cli.invoke(config, "verify")
    assert result.exit_code == 1
    problems = [line for line in result.stderr.splitlines() if line.startswith("problem:")]
    assert sorted(next(i for i in ids if i in line) for line in problems) == sorted(ids[:4])
    assert f"checked {len(ids)} blob(s)" in result.stdout


def test_rotation_keeps_every_blob_and_retires_the_old_passphrase(encrypted, tmp_path: Path, cli: Cli) -> None:
    config, ids = encrypted
    new = write_passphrase(tmp_path / "new-pp", "the new and longer passphrase")
    result = cli.invoke(config, "key", "rotate", "--new-passphrase-file", str(new))
    assert result.exit_code == 0, result.output
    assert cli.invoke(config, "verify").exit_code == 2  # the config still names the old passphrase: refused
    rotated = write_config(tmp_path, closed_imap_account("acct"), archive_extra=encryption_toml(new))
    result = cli.invoke(rotated, "verify", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["blobs_checked"] == len(ids)
    short = write_passphrase(tmp_path / "short", "too short")
    result = cli.invoke(rotated, "key", "rotate", "--new-passphrase-file", str(short))
    assert result.exit_code == 2 and "at least 12 characters" in result.stderr


def test_key_init_refuses_an_archive_of_plain_blobs(tmp_path: Path, cli: Cli, open_archive: OpenArchive) -> None:
    plain = write_config(tmp_path, closed_imap_account("acct"))
    with open_archive(plain) as archive:
        add_messages(archive, "acct", ITEMS[:3])
    config = write_config(
        tmp_path, closed_imap_account("acct"), archive_extra=encryption_toml(write_passphrase(tmp_path / "pp"))
    )
    result = cli.invoke(config, "key", "init")
    assert result.exit_code == 2 and "already holds unencrypted blobs" in result.stderr
    assert not (tmp_path / "archive" / "keys.json").exists()
    result = cli.invoke(config, "status")
    assert result.exit_code == 2 and "run `archiver key init` first" in result.stderr


def test_an_encrypted_archive_opened_without_encryption_is_refused(encrypted, tmp_path: Path, cli: Cli) -> None:
    result = cli.invoke(write_config(tmp_path, closed_imap_account("acct")), "ls", "--account", "acct")
    assert result.exit_code == 2 and "encrypted (keys.json) but [archive] encryption is off" in result.stderr


def test_a_generated_key_file_makes_and_opens_a_new_archive(tmp_path: Path, cli: Cli) -> None:
    key_file = tmp_path / "archive.key"
    config = write_config(tmp_path, archive_extra=f'encryption = true\nkey_file = "{key_file}"\n')
    result = cli.invoke(config, "key", "init", "--generate-key-file")
    assert result.exit_code == 0, result.output
    assert key_file.stat().st_mode & 0o777 == 0o600 and (tmp_path / "archive" / "keys.json").is_file()
    result = cli.invoke(config, "key", "check", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["protection"]["kdf"] == "hkdf-sha256" and str(key_file) in report["unlocked_by"]
    assert cli.invoke(config, "key", "init").exit_code == 2  # never a second key
    result = cli.invoke(config, "status", "--json")
    assert json.loads(result.stdout)["encryption_key_id"] == report["key_id"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("encryption = true\n", "encryption = true needs exactly one of passphrase"),
        ('encryption = true\npassphrase_env = "A"\nkey_file = "/k"\n', "got 2"),
        ('passphrase_env = "A"\n', "only used with encryption = true"),
    ],
)
def test_the_encryption_keys_are_checked_when_the_config_loads(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(write_config(tmp_path, archive_extra=extra))


def test_key_init_with_a_short_passphrase_makes_nothing(tmp_path: Path, cli: Cli) -> None:
    config = write_config(tmp_path, archive_extra=encryption_toml(write_passphrase(tmp_path / "pp", "too short")))
    result = cli.invoke(config, "key", "init")
    assert result.exit_code == 2 and "at least 12 characters" in result.stderr
    assert not (tmp_path / "archive").exists()
