"""A real mail client reads our exports: notmuch indexes the Maildir (flags from file names become its
tags) and the .eml tree, and finds every message; its own copy of each file is byte for byte ours."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from archiver.files.export import export
from archiver.scope import Scope
from tests.fixtures.archives import blob_counts

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("notmuch") is None, reason="notmuch is not installed (scripts/setup.sh)"),
]


def notmuch(home: Path, *args: str) -> str:
    """Run notmuch with a private config and database (never the user's own)."""
    env = {**os.environ, "HOME": str(home), "NOTMUCH_CONFIG": str(home / "notmuch-config")}
    result = subprocess.run(["notmuch", *args], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def index(tmp_path: Path, mail_root: Path) -> Path:
    home = tmp_path / "notmuch-home"
    home.mkdir()
    (home / "notmuch-config").write_text(
        f"[database]\npath={mail_root}\n[new]\ntags=unread;inbox;\n[maildir]\nsynchronize_flags=true\n"
    )
    notmuch(home, "new", "--quiet")
    return home


def test_notmuch_indexes_the_maildir_export_with_flags(archived, tmp_path, open_archive):
    _path, config, expected = archived
    out = tmp_path / "maildir"
    with open_archive(config, readonly=True) as archive:
        report = export(archive, Scope("acct"), "maildir", out)
    assert report.ok
    home = index(tmp_path, out)
    files = [Path(line) for line in notmuch(home, "search", "--output=files", "*").splitlines()]
    total = sum(sum(c.values()) for c in expected.values())
    assert len(files) == total == report.messages
    assert Counter(hashlib.sha256(f.read_bytes()).hexdigest() for f in files) == sum(
        (blob_counts(c) for c in expected.values()), Counter()
    )
    # maildir flags -> notmuch tags: a file named with F belongs to a flagged message, with R replied
    flagged = set(notmuch(home, "search", "--output=files", "tag:flagged").splitlines())
    replied = set(notmuch(home, "search", "--output=files", "tag:replied").splitlines())
    named_f = {str(f) for f in files if "F" in f.name.rsplit(":2,", 1)[1]}
    named_r = {str(f) for f in files if "R" in f.name.rsplit(":2,", 1)[1]}
    assert named_f and named_f <= flagged
    assert named_r and named_r <= replied
    # a message none of whose files has S is unread for notmuch
    unseen = {str(f) for f in files if "S" not in f.name.rsplit(":2,", 1)[1]}
    unread = set(notmuch(home, "search", "--output=files", "tag:unread").splitlines())
    assert unread and unread <= unseen
    # folders are found by their Maildir++ names
    doomed = notmuch(home, "count", "--output=files", 'folder:".Doomed.&ANw-n&AO8-code &- more"').strip()
    assert int(doomed) == sum(expected["Doomed/Ünïcode & more"].values())


def test_notmuch_indexes_the_eml_tree(archived, tmp_path, open_archive):
    _path, config, expected = archived
    out = tmp_path / "eml"
    with open_archive(config, readonly=True) as archive:
        assert export(archive, Scope("acct"), "eml", out).ok
    home = index(tmp_path, out)
    files = notmuch(home, "search", "--output=files", "*").splitlines()
    assert len(files) == sum(sum(c.values()) for c in expected.values())
    subject = notmuch(home, "count", "subject:twice").strip()
    assert subject == "1"  # the same Message-ID twice: one notmuch message, two files
    assert notmuch(home, "count", "--output=files", "subject:twice").strip() == "2"
