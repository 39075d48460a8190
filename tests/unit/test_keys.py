"""The archive key: wrapped in keys.json, unlocked by a passphrase or key file, rotated; a wrong one changes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from archiver.errors import ArchiveKeyError
from archiver.store.keys import (
    DEFAULT_COST,
    KEY_FILE_NAME,
    create_key_file,
    generate_key_file,
    key_file_secret,
    passphrase_secret,
    rotate,
    unlock,
)
from tests.fixtures.sealed import CHEAP, PASSPHRASE, make_key, secret


def test_the_passphrase_unlocks_the_same_key_and_is_nowhere_in_the_file(tmp_path: Path) -> None:
    made = make_key(tmp_path)
    again = unlock(tmp_path, secret())
    assert again.key_id == made.key_id and again.content_key == made.content_key
    blob_id = "ab" * 32
    assert again.object_name(blob_id) == made.object_name(blob_id) != blob_id  # keyed, stable: dedup works
    text = (tmp_path / KEY_FILE_NAME).read_text()
    assert PASSPHRASE not in text and made.content_key.hex() not in text
    data = json.loads(text)
    assert data["protection"] | {"salt": "…"} == {
        "kind": "passphrase", "salt": "…", "kdf": "argon2id", "memory_kib": 8192, "iterations": 1, "lanes": 1,
    }  # fmt: skip
    assert PASSPHRASE not in repr(secret()) and made.content_key.hex() not in repr(made)


def test_two_archives_name_the_same_message_differently(tmp_path: Path) -> None:
    blob_id = "cd" * 32
    assert make_key(tmp_path / "a").object_name(blob_id) != make_key(tmp_path / "b").object_name(blob_id)


def test_a_wrong_passphrase_is_one_clear_error_and_changes_nothing(tmp_path: Path) -> None:
    make_key(tmp_path)
    before = (tmp_path / KEY_FILE_NAME).read_bytes()
    with pytest.raises(ArchiveKeyError) as caught:
        unlock(tmp_path, secret("not the passphrase at all"))
    assert "wrong passphrase" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(ArchiveKeyError, match="wrong passphrase"):
        rotate(tmp_path, secret("not the passphrase at all"), secret("a brand new passphrase"), CHEAP)
    assert (tmp_path / KEY_FILE_NAME).read_bytes() == before


def test_rotation_rewraps_the_same_key_and_the_old_passphrase_stops_working(tmp_path: Path) -> None:
    made = make_key(tmp_path)
    rotated = rotate(tmp_path, secret(), secret("a brand new passphrase"), CHEAP)
    assert rotated.key_id == made.key_id
    with pytest.raises(ArchiveKeyError, match="wrong passphrase"):
        unlock(tmp_path, secret())
    assert unlock(tmp_path, secret("a brand new passphrase")).content_key == made.content_key
    assert "rotated" in json.loads((tmp_path / KEY_FILE_NAME).read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_FILE_NAME, "locks"]  # no temp file, no old copy


def test_a_key_file_protects_the_key_and_can_replace_the_passphrase(tmp_path: Path) -> None:
    make_key(tmp_path / "archive")
    key_file = tmp_path / "archive.key"
    generate_key_file(key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ArchiveKeyError, match="exists already"):
        generate_key_file(key_file)
    by_file = key_file_secret(key_file, "key_file")
    made = rotate(tmp_path / "archive", secret(), by_file, CHEAP)
    assert unlock(tmp_path / "archive", by_file).key_id == made.key_id
    with pytest.raises(ArchiveKeyError, match="protected by a key file, the config gives"):
        unlock(tmp_path / "archive", secret())
    other = tmp_path / "other.key"
    generate_key_file(other)
    with pytest.raises(ArchiveKeyError, match="wrong key"):
        unlock(tmp_path / "archive", key_file_secret(other, "key_file"))


def test_a_short_key_file_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"only sixteen byt\n")
    with pytest.raises(ArchiveKeyError, match="holds 16 bytes"):
        key_file_secret(short, "[archive] key_file")


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],
        lambda text: text.replace('"memory_kib": 8192', '"memory_kib": 8193'),
        lambda text: text.replace('"version": 1', '"version": 9'),
        lambda text: text.replace('"format": "archiver-keys"', '"format": "other"'),
        lambda text: text.replace('"kind": "passphrase"', '"kind": "key_file"'),
    ],
    ids=["cut", "kdf cost edited", "newer version", "not a key file", "kind edited"],
)
def test_a_damaged_key_file_is_one_clear_error(tmp_path: Path, damage) -> None:
    make_key(tmp_path)
    path = tmp_path / KEY_FILE_NAME
    path.write_text(damage(path.read_text()))
    with pytest.raises(ArchiveKeyError) as caught:
        unlock(tmp_path, secret())
    assert str(path) in str(caught.value) or "key file" in str(caught.value)


def test_a_key_is_never_made_twice(tmp_path: Path) -> None:
    make_key(tmp_path)
    with pytest.raises(ArchiveKeyError, match="exists already"):
        create_key_file(tmp_path, secret(), CHEAP)


def test_the_default_cost_is_recorded_and_unlocks(tmp_path: Path) -> None:
    key = create_key_file(tmp_path, passphrase_secret("a passphrase for the default", "test"))
    data = json.loads((tmp_path / KEY_FILE_NAME).read_text())
    assert (data["protection"]["memory_kib"], data["protection"]["iterations"]) == (
        DEFAULT_COST.memory_kib,
        DEFAULT_COST.iterations,
    )
    assert unlock(tmp_path, passphrase_secret("a passphrase for the default", "test")).key_id == key.key_id
    assert sorted(os.listdir(tmp_path)) == [KEY_FILE_NAME, "locks"]
