"""Restore edges against a real Dovecot: keywords the target refuses, POP3-sourced messages, partly held folders."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest

from archiver.backup import run_backup
from archiver.files.export import export
from archiver.restore.execute import restore
from archiver.scope import Scope
from tests.fixtures.archives import store_placements
from tests.fixtures.config import parse_config
from tests.fixtures.mail_server import account_toml, second_user, state, synthetic

pytestmark = pytest.mark.integration


def test_keywords_the_target_refuses_are_reported_and_the_message_still_restored(
    dovecot, mail_user, tmp_path, config_file, open_archive
):
    """Dovecot advertises ``\\*`` yet refuses keywords over 50 characters at APPEND; labels with "]"
    (from other servers) are no IMAP atoms at all. The message is restored with every flag the target
    takes, and the refused keywords are named in the report."""
    config = parse_config(config_file(account_toml(dovecot, mail_user, name="acct")))
    long_keyword = "k" * 60
    when = datetime(2018, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2))).isoformat()
    entries = [
        (1, b"Message-ID: <long@x>\r\nSubject: long\r\n\r\nbody 1\r\n", ("\\Seen", long_keyword, "$Good"), when),
        (2, b"Message-ID: <space@x>\r\nSubject: space\r\n\r\nbody 2\r\n", ("\\Flagged", "bad]label"), when),
        (3, b"Message-ID: <plain@x>\r\nSubject: plain\r\n\r\nbody 3\r\n", ("\\Answered", "$Work"), when),
        (4, b"Message-ID: <odd@x>\r\nSubject: odd\r\n\r\nbody 4\r\n", ("\\Custom", "\\Seen"), when),
    ]
    with open_archive(config) as archive:
        store_placements(archive, "acct", "imap", "Flags", "/", entries)
        scope = Scope("acct", folders=("Flags",))
        dry = restore(archive, scope, config.accounts[0], prefix="R", dry_run=True)
        assert dry.folders[0].refused_flags == {"bad]label", "\\Custom"}  # knowable before any APPEND
        report = restore(archive, scope, config.accounts[0], prefix="R")
    assert report.ok, (report.problems, report.folders[0].failures)
    assert report.appended == len(entries)
    assert report.folders[0].refused_flags == {long_keyword, "bad]label", "\\Custom"}
    got = {
        hashlib.sha256(raw).hexdigest(): (frozenset(f.decode() for f in flags) - {"\\Recent"}, date)
        for raw, flags, date in dovecot.fetch_all(mail_user.name, mail_user.password, "R/Flags").values()
    }
    want = {
        hashlib.sha256(entries[0][1]).hexdigest(): {"\\Seen", "$Good"},
        hashlib.sha256(entries[1][1]).hexdigest(): {"\\Flagged"},
        hashlib.sha256(entries[2][1]).hexdigest(): {"\\Answered", "$Work"},
        hashlib.sha256(entries[3][1]).hexdigest(): {"\\Seen"},
    }
    assert {k: v[0] for k, v in got.items()} == want
    assert {v[1] for v in got.values()} == {datetime.fromisoformat(when)}


def test_pop3_sourced_messages_restore_into_imap(dovecot, mail_user, tmp_path, config_file, open_archive):
    """POP3 placements (UIDL as uid, the single INBOX, no flags, no INTERNALDATE) restore like any other:
    exact bytes, and the Date header as INTERNALDATE rather than the moment of the restore."""
    config = parse_config(config_file(account_toml(dovecot, mail_user, name="acct")))
    raws = [
        b"Message-ID: <p1@x>\r\nDate: Tue, 02 Jan 2018 10:11:12 +0100\r\nSubject: pop one\r\n\r\nhello\r\n",
        b"Message-ID: <p2@x>\r\nDate: Wed, 03 Jan 2018 10:11:12 -0500\r\nSubject: pop two\r\n\r\nworld\r\n",
        b"Subject: no id, no date\r\n\r\nFrom the start\r\n",
    ]
    entries = [(f"{n + 1:08X}{1700000000:08X}", raw, (), None) for n, raw in enumerate(raws)]
    with open_archive(config) as archive:
        store_placements(archive, "pop", "pop3", "INBOX", None, entries)
        report = restore(archive, Scope("pop"), config.accounts[0], prefix="FromPop")
        again = restore(archive, Scope("pop"), config.accounts[0], prefix="FromPop")
        assert export(archive, Scope("pop"), "eml", tmp_path / "eml").ok
    mtimes = sorted(p.stat().st_mtime for p in (tmp_path / "eml" / "INBOX").glob("*.eml"))
    days = [datetime(2018, 1, d, h, 11, 12, tzinfo=UTC).timestamp() for d, h in ((2, 9), (3, 15))]
    assert mtimes[:2] == days  # the Date header stands in for the missing INTERNALDATE (the third has none)
    assert report.ok and report.appended == 3, (report.problems, report.folders)
    assert [f.target for f in report.folders] == ["FromPop/INBOX"]
    assert again.ok and again.appended == 0 and again.skipped == 3
    served = dovecot.fetch_all(mail_user.name, mail_user.password, "FromPop/INBOX").values()
    dates = {hashlib.sha256(raw).hexdigest(): date for raw, _flags, date in served}
    assert set(dates) == {hashlib.sha256(raw).hexdigest() for raw in raws}
    assert dates[hashlib.sha256(raws[0]).hexdigest()] == datetime(2018, 1, 2, 9, 11, 12, tzinfo=UTC)
    assert dates[hashlib.sha256(raws[1]).hexdigest()] == datetime(2018, 1, 3, 15, 11, 12, tzinfo=UTC)


def test_interrupted_folder_partly_there_gets_only_what_is_missing(
    dovecot, mail_user, tmp_path, config_file, open_archive
):
    """A target folder that already holds some of the planned messages (another copy of the same bytes
    with other flags counts as held; a message with the same Message-ID but other bytes does not)."""
    messages = synthetic(120, seed=8)
    dovecot.append_many(mail_user.name, "Src", messages)
    expected = state(dovecot, mail_user, "Src")
    # the target already holds every third message, plus an impostor sharing a Message-ID
    held = [(raw, ("\\Deleted",), when) for raw, _flags, when in messages[::3]]
    impostor = messages[1][0].replace(b"line 1 of", b"LINE 1 OF")
    assert impostor != messages[1][0]
    # (another INTERNALDATE, or the backup of R/Src would take it for the original by its fingerprint)
    dovecot.append_many(mail_user.name, "R/Src", [*held, (impostor, (), messages[1][2] + timedelta(hours=1))])
    config = parse_config(config_file(account_toml(dovecot, mail_user, name="acct")))
    with open_archive(config) as archive:
        assert run_backup(config, config.accounts[0], archive=archive).ok
        report = restore(archive, Scope("acct", folders=("Src",)), config.accounts[0], prefix="R")
    assert report.ok and report.skipped == len(held) and report.appended == len(messages) - len(held)
    after = state(dovecot, mail_user, "R/Src")
    assert sum(after.values()) == len(messages) + 1
    assert {key[0] for key in after} == {key[0] for key in expected} | {hashlib.sha256(impostor).hexdigest()}


def test_pop3_backup_then_restore_into_imap_end_to_end(dovecot, mail_user, tmp_path, config_file, open_archive):
    """A maildrop backed up over POP3, restored into another account's IMAP folder: the same bytes (POP3
    and IMAP both serve the CRLF form), twice without duplicates."""
    dovecot.append_many(mail_user.name, "INBOX", synthetic(40, seed=17))
    expected = Counter(key[0] for key in state(dovecot, mail_user, "INBOX").elements())
    target = second_user(dovecot, mail_user)
    pop3 = account_toml(dovecot, mail_user, name="pop").replace('protocol = "imap"', 'protocol = "pop3"')
    pop3 = pop3.replace(f"port = {dovecot.imap_port}", f"port = {dovecot.pop3_port}")
    config = parse_config(config_file(pop3 + account_toml(dovecot, target, name="dst")))
    with open_archive(config) as archive:
        backup = run_backup(config, config.account("pop"), archive=archive)
        if not backup.ok and any("not supported" in p for p in backup.problems):
            pytest.skip("POP3 backup is not built in this tree")
        assert backup.ok, backup.problems
        report = restore(archive, Scope("pop"), config.account("dst"), prefix="P")
        again = restore(archive, Scope("pop"), config.account("dst"), prefix="P")
    assert report.ok and report.appended == 40, (report.problems, report.folders)
    assert again.ok and again.appended == 0 and again.skipped == 40
    served = dovecot.fetch_all(target.name, target.password, "P/INBOX").values()
    assert Counter(hashlib.sha256(raw).hexdigest() for raw, _f, _d in served) == expected
