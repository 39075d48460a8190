"""IMAP backup against a real Dovecot: completeness, incrementality, dedup, read-only-ness."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from archiver.backup import run_backup
from archiver.verify import verify_archive
from tests.fixtures.archives import archived_hashes
from tests.fixtures.config import parse_config
from tests.fixtures.mail_server import account_toml, fill_mailbox, server_hashes

pytestmark = pytest.mark.integration


def fill(dovecot, user, count: int, seed: int = 7) -> list[str]:
    return sorted(fill_mailbox(dovecot, user, count, seed))


def server_folders(dovecot, user) -> list[str]:
    client = dovecot.connect(user.name, user.password)
    try:
        return sorted(name for flags, _d, name in client.list_folders() if b"\\Noselect" not in flags)
    finally:
        client.logout()


@pytest.fixture
def filled(dovecot, mail_user, tmp_path, config_file):
    folders = fill(dovecot, mail_user, 240)
    config = parse_config(config_file(account_toml(dovecot, mail_user), "batch_messages = 40"))
    return config, folders


@pytest.mark.parametrize("security", ["starttls", "tls", "none"])
def test_full_backup_equals_server_content(dovecot, mail_user, tmp_path, security, config_file, archive):
    fill(dovecot, mail_user, 120, seed=security.__hash__() % 1000)
    folders = server_folders(dovecot, mail_user)
    config = parse_config(config_file(account_toml(dovecot, mail_user, security=security)))
    report = run_backup(config, config.accounts[0], archive=archive)
    assert report.ok, report.problems
    expected = server_hashes(dovecot, mail_user, folders)
    assert archived_hashes(archive.catalog) == expected
    assert len(expected) == 120
    for (_folder, _uid), blob_id in expected.items():
        assert hashlib.sha256(archive.store.get(blob_id)).hexdigest() == blob_id
    assert verify_archive(archive).ok


def test_flags_and_internaldate_recorded(dovecot, mail_user, tmp_path, config_file, open_archive):
    when = datetime(2011, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=-5)))
    dovecot.append(mail_user.name, "Odd & Ends/Ünïcode", b"Subject: x\r\n\r\nhi\r\n", ["\\Flagged", "$Work"], when)
    config = parse_config(config_file(account_toml(dovecot, mail_user)))
    with open_archive(config) as archive:
        assert run_backup(config, config.accounts[0], archive=archive).ok
        row = archive.catalog.db.execute(
            "SELECT f.name, p.flags, p.internaldate FROM placements p JOIN folders f ON f.id = p.folder_id"
        ).fetchone()
    assert row["name"] == "Odd & Ends/Ünïcode"
    assert set(row["flags"].split()) == {"\\Flagged", "$Work"}
    assert datetime.fromisoformat(row["internaldate"]) == when  # the same instant; Dovecot keeps no offset


def test_second_run_fetches_nothing_and_new_mail_is_picked_up(dovecot, mail_user, filled, open_archive):
    config, folders = filled
    account = config.accounts[0]
    with open_archive(config) as archive:
        first = run_backup(config, account, archive=archive)
        assert first.ok and first.messages_new == 240
        second = run_backup(config, account, archive=archive)
        assert second.ok
        assert second.messages_new == 0 and second.bytes_fetched == 0
        assert all(f.unchanged for f in second.folders)
        dovecot.append(mail_user.name, "INBOX", b"Subject: late\r\nMessage-ID: <late@x>\r\n\r\nnew\r\n")
        third = run_backup(config, account, archive=archive)
        assert third.ok and third.messages_new == 1
        assert [f.name for f in third.folders if not f.unchanged] == ["INBOX"]
        assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, folders)


def test_duplicates_across_folders_are_one_blob(dovecot, mail_user, tmp_path, config_file, archive):
    raw = b"Subject: same\r\nMessage-ID: <dup@x>\r\n\r\n" + b"identical body\r\n" * 200
    for folder in ("INBOX", "Archive/2020", "Копия"):
        dovecot.append(mail_user.name, folder, raw)
    config = parse_config(config_file(account_toml(dovecot, mail_user)))
    report = run_backup(config, config.accounts[0], archive=archive)
    assert report.ok and report.messages_new == 3 and report.blobs_new == 1
    assert list(archive.store.iter_ids()) == [hashlib.sha256(raw).hexdigest()]


def test_backup_never_changes_the_server(dovecot, mail_user, filled):
    config, folders = filled
    before = {
        f: {
            uid: (flags, date)
            for uid, (_r, flags, date) in dovecot.fetch_all(mail_user.name, mail_user.password, f).items()
        }
        for f in folders
    }
    folders_before = server_folders(dovecot, mail_user)
    unseen_before = sum(1 for f in before.values() for flags, _ in f.values() if b"\\Seen" not in flags)
    assert unseen_before > 0
    assert run_backup(config, config.accounts[0]).ok
    after = {
        f: {
            uid: (flags, date)
            for uid, (_r, flags, date) in dovecot.fetch_all(mail_user.name, mail_user.password, f).items()
        }
        for f in folders
    }
    assert after == before
    assert server_folders(dovecot, mail_user) == folders_before


def test_folder_filters(dovecot, mail_user, tmp_path, config_file, open_archive):
    for folder in ("INBOX", "Lists/python", "Lists/rust", "Spam"):
        dovecot.append(mail_user.name, folder, f"Subject: {folder}\r\n\r\nx\r\n".encode())
    extra = '[accounts.folders]\ninclude = ["INBOX", "Lists/*"]\nexclude = ["Lists/rust"]\n'
    config = parse_config(config_file(account_toml(dovecot, mail_user, extra=extra)))
    with open_archive(config) as archive:
        assert run_backup(config, config.accounts[0], archive=archive).ok
        names = {name for name, _uid in archived_hashes(archive.catalog)}
    assert names == {"INBOX", "Lists/python"}


def test_corpus_round_trips_byte_exact(dovecot, mail_user, tmp_path, corpus_dir, config_file, archive):
    from archiver.devtools.sample_mail import corpus_messages

    appended = 0
    client = dovecot.connect(mail_user.name, mail_user.password)
    try:
        client.create_folder("Corpus")
        for _path, raw in corpus_messages(corpus_dir):
            try:
                client.append("Corpus", raw, msg_time=datetime(2020, 1, 1, tzinfo=UTC))
                appended += 1
            except Exception:
                continue
    finally:
        client.logout()
    assert appended > 1000
    config = parse_config(config_file(account_toml(dovecot, mail_user)))
    report = run_backup(config, config.accounts[0], archive=archive)
    assert report.ok, report.problems
    on_server = dovecot.fetch_all(mail_user.name, mail_user.password, "Corpus")
    archived = archived_hashes(archive.catalog)
    assert len(on_server) == appended
    for uid, (raw, _flags, _date) in on_server.items():
        blob_id = archived[("Corpus", uid)]
        assert archive.store.get(blob_id) == raw
    rows = archive.catalog.db.execute("SELECT COUNT(*) FROM messages WHERE subject IS NOT NULL").fetchone()[0]
    assert rows > 0.8 * len(set(archived.values()))


def test_fetch_formats_no_protocol_trace_of_message_bodies(dovecot, mail_user, tmp_path, config_file):
    """imapclient turns imaplib's trace on (debug 5): every FETCH response, bodies included, was repr'd then dropped."""
    import logging

    from archiver.sources.imap import ImapSource

    fill(dovecot, mail_user, 5)
    config = parse_config(config_file(account_toml(dovecot, mail_user, security="none")))
    traced: list[str] = []
    with ImapSource(config.accounts[0]).connect() as source:
        source.client._imap._mesg = traced.append
        source.examine("INBOX")
        messages, _ = source.fetch(source.all_uids())
    assert messages and not any("Subject" in line for line in traced)

    trace_logger = logging.getLogger("imapclient.imaplib")
    trace_logger.setLevel(logging.DEBUG)  # asked for explicitly: the trace stays on
    try:
        with ImapSource(config.accounts[0]).connect() as source:
            assert source.client._imap.debug == 5
    finally:
        trace_logger.setLevel(logging.NOTSET)


@pytest.mark.parametrize("security", ["starttls", "tls", "none"])
def test_every_connection_sends_without_nagle_delay(dovecot, mail_user, config_file, security):
    """imaplib sends an APPEND's literal and its CRLF apart: with Nagle on, each message waited for a delayed ACK."""
    import socket

    from archiver.sources.imap import ImapSource

    config = parse_config(config_file(account_toml(dovecot, mail_user, security=security)))
    with ImapSource(config.accounts[0]).connect() as source:
        assert source.client.socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
