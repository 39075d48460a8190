"""Export round trips: an IMAP-archived account exported as mbox, Maildir and .eml, read back with
Python's ``mailbox`` module (what mutt/notmuch-style readers see), gives the same bytes, flags, dates."""

from __future__ import annotations

import hashlib
import mailbox
import os
from collections import Counter
from datetime import datetime

import pytest

from archiver.archive import Archive
from archiver.backup import run_backup
from archiver.files.export import export, mboxrd_unescape_line
from archiver.restore.plan import Scope
from tests.integration.helpers import account_toml, load, run_cli, write_config
from tests.integration.test_restore import fill

pytestmark = pytest.mark.integration


@pytest.fixture
def archived(dovecot, mail_user, tmp_path):
    fill(dovecot, mail_user, 40, seed=9, folders=4)
    path = write_config(tmp_path, account_toml(dovecot, mail_user, name="acct"))
    config = load(path)
    with Archive(config.archive) as archive:
        assert run_backup(config, config.accounts[0], archive=archive).ok
        rows = archive.catalog.placements_as_of(archive.catalog.account_id("acct"))
        expected: dict[str, Counter] = {}
        for row in rows:
            expected.setdefault(row.folder, Counter())[(row.blob_id, frozenset(row.flags), row.internaldate)] += 1
    return path, config, expected


def hashes(expected: Counter) -> Counter:
    result: Counter = Counter()
    for (blob_id, _flags, _date), count in expected.items():
        result[blob_id] += count
    return result


def test_mbox_round_trip_with_from_quoting(archived, tmp_path):
    path, _config, expected = archived
    out = tmp_path / "mbox"
    result = run_cli(path, "export", "--account", "acct", "--format", "mbox", "-o", str(out))
    assert result.returncode == 0, result.stderr
    found = {}
    for file in out.rglob("*.mbox"):
        box = mailbox.mbox(file, create=False)
        raws = [b"".join(mboxrd_unescape_line(x) for x in box.get_bytes(k).splitlines(True)) for k in box.keys()]  # noqa: SIM118 (iterating a mailbox yields messages)
        found[file.relative_to(out).as_posix()] = Counter(hashlib.sha256(r).hexdigest() for r in raws)
    assert found["Doomed/Ünïcode & more.mbox"] == hashes(expected["Doomed/Ünïcode & more"])
    assert sorted(found.values(), key=str) == sorted((hashes(c) for c in expected.values()), key=str)
    text = (out / "Doomed" / "Ünïcode & more.mbox").read_bytes()
    assert b"\n>From the start\r\n>>From quoted\r\n" in text  # mboxrd quoting really happened


def test_maildir_round_trip_flags_and_dates(archived, tmp_path):
    _path, config, expected = archived
    out = tmp_path / "maildir"
    with Archive(config.archive, readonly=True) as archive:
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


def test_eml_tree_round_trip_and_safe_names(archived, tmp_path):
    _path, config, expected = archived
    out = tmp_path / "eml"
    with Archive(config.archive, readonly=True) as archive:
        report = export(archive, Scope("acct"), "eml", out)
    assert report.ok
    for folder, counter in expected.items():
        directory = out.joinpath(*folder.split("/"))
        files = list(directory.glob("*.eml"))
        assert Counter(hashlib.sha256(f.read_bytes()).hexdigest() for f in files) == hashes(counter)
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
