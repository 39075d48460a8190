"""Export round trips: an IMAP-archived account exported as mbox, Maildir and .eml, read back with
Python's ``mailbox`` module (what mutt/notmuch-style readers see), gives the same bytes, flags, dates."""

from __future__ import annotations

import hashlib
import mailbox
import os
from collections import Counter
from datetime import datetime

import pytest

from archiver.files.export import export
from archiver.files.formats import mboxrd_unescape_line
from archiver.scope import Scope
from tests.fixtures.archives import blob_counts

pytestmark = pytest.mark.integration


def test_mbox_round_trip_with_from_quoting(archived, tmp_path, cli):
    path, _config, expected = archived
    out = tmp_path / "mbox"
    result = cli(path, "export", "--account", "acct", "--format", "mbox", "-o", str(out))
    assert result.returncode == 0, result.stderr
    found = {}
    for file in out.rglob("*.mbox"):
        box = mailbox.mbox(file, create=False)
        raws = [b"".join(mboxrd_unescape_line(x) for x in box.get_bytes(k).splitlines(True)) for k in box.keys()]  # noqa: SIM118 (iterating a mailbox yields messages)
        found[file.relative_to(out).as_posix()] = Counter(hashlib.sha256(r).hexdigest() for r in raws)
    assert found["Doomed/Ünïcode & more.mbox"] == blob_counts(expected["Doomed/Ünïcode & more"])
    assert sorted(found.values(), key=str) == sorted((blob_counts(c) for c in expected.values()), key=str)
    text = (out / "Doomed" / "Ünïcode & more.mbox").read_bytes()
    assert b"\n>From the start\r\n>>From quoted\r\n" in text  # mboxrd quoting really happened


def test_maildir_round_trip_flags_and_dates(archived, tmp_path, open_archive):
    _path, config, expected = archived
    out = tmp_path / "maildir"
    with open_archive(config, readonly=True) as archive:
        report = export(archive, Scope("acct"), "maildir", out)
    assert report.ok and report.messages == sum(sum(c.values()) for c in expected.values())
    root = mailbox.Maildir(out, factory=None, create=False)
    assert "Doomed.&ANw-n&AO8-code &- more" in root.list_folders()
    boxes = {"INBOX": root} | {name: root.get_folder(name) for name in root.list_folders()}
    letters = {"\\Seen": "S", "\\Flagged": "F", "\\Answered": "R", "\\Draft": "D", "\\Deleted": "T"}
    for name, box in boxes.items():
        folder = "INBOX" if name == "INBOX" else maildir_name(name)
        keyword_file = out / ("" if name == "INBOX" else "." + name) / "dovecot-keywords"
        keyword_names = {}
        if keyword_file.exists():
            for line in keyword_file.read_text().splitlines():
                number, _, keyword = line.partition(" ")
                keyword_names[chr(ord("a") + int(number))] = keyword
        got: Counter = Counter()
        for key in box.keys():  # noqa: SIM118 (iterating a mailbox yields messages)
            message = box.get_message(key)
            raw = box.get_bytes(key)
            info = message.get_flags()
            keywords = frozenset(keyword_names[c] for c in info if c.islower())
            system = "".join(c for c in info if c.isupper())
            got[(hashlib.sha256(raw).hexdigest(), system, keywords, int(message.get_date()))] += 1
        want: Counter = Counter()
        for (blob_id, flags, when), count in expected[folder].items():
            system = "".join(sorted(letters[f] for f in flags if f in letters))
            keywords = frozenset(f for f in flags if not f.startswith("\\"))
            want[(blob_id, system, keywords, int(datetime.fromisoformat(when).timestamp()))] += count
        assert got == want, folder


def test_eml_tree_round_trip_and_safe_names(archived, tmp_path, open_archive):
    _path, config, expected = archived
    out = tmp_path / "eml"
    with open_archive(config, readonly=True) as archive:
        report = export(archive, Scope("acct"), "eml", out)
    assert report.ok
    for folder, counter in expected.items():
        directory = out.joinpath(*folder.split("/"))
        files = list(directory.glob("*.eml"))
        assert Counter(hashlib.sha256(f.read_bytes()).hexdigest() for f in files) == blob_counts(counter)
        dates = sorted(int(f.stat().st_mtime) for f in files)
        assert dates == sorted(
            int(datetime.fromisoformat(w).timestamp()) for (_b, _f, w), n in counter.items() for _ in range(n)
        )
    for _dir, _dirs, names in os.walk(out):
        for name in names:
            assert not set(name) & set('<>:"\\|?*') and len(name.encode()) <= 104


def maildir_name(name: str) -> str:
    from imapclient import imap_utf7

    return "/".join(imap_utf7.decode(p.encode()) for p in name.split("."))
