"""POP3 accounts against the real Dovecot: full and incremental backups, the maildrop left as it was,
SIGKILL then resume, dedup with IMAP, byte exactness over the shared corpus, clear errors.

What the server did is read from Dovecot's own log (``top=…, retr=…, del=…`` per session), so
"fetched nothing" and "downloaded nothing twice" are the server's word, not ours.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from archiver.backup import run_backup
from archiver.backup.pop3 import FINGERPRINT_UIDVALIDITY, UIDL_UIDVALIDITY, Pop3Backup
from archiver.catalog import Catalog
from archiver.devtools.sample_mail import corpus_messages
from archiver.sources.pop3 import Pop3Source
from archiver.verify import verify_archive
from tests.fixtures.archives import archived_hashes
from tests.fixtures.config import parse_config, write_config
from tests.fixtures.mail_server import account_toml, fill_inbox, pop3_toml, server_by_uidl, uidvalidity_of_inbox

pytestmark = pytest.mark.integration

LOG_WAIT = 10.0  # seconds to wait for Dovecot to log a session's end (it logs after the client left)


# -- helpers -------------------------------------------------------------------------------------------------
def maildrop_state(dovecot, user) -> dict:
    """Everything a user could see change: each message file (name, maildir flags, content) and IMAP FLAGS.

    Files are keyed by their unique maildir name (before ``:2,``); the directory (``new/`` or ``cur/``)
    is reported apart, see :func:`assert_maildrop_unchanged`.
    """
    files = {}
    for sub in ("new", "cur"):
        for path in (dovecot.maildir(user.name) / sub).iterdir():
            unique, _, info = path.name.partition(":")
            flags = info.removeprefix("2,")  # a new/ file has no info; moved to cur/ it gets an empty "2,"
            files[unique] = (sub, flags, hashlib.sha256(path.read_bytes()).hexdigest())
    imap_flags = {
        uid: tuple(sorted(f for f in flags if f != b"\\Recent"))
        for uid, (_raw, flags, _date) in dovecot.fetch_all(user.name, user.password, "INBOX").items()
    }
    return {"files": files, "flags": imap_flags}


def assert_maildrop_unchanged(before: dict, after: dict) -> None:
    """Same files, same content, same flags.  One thing may differ: ``new/`` → ``cur/``.

    Dovecot moves a file from ``new/`` to ``cur/`` (dropping IMAP's per-session ``\\Recent``) when any
    POP3 session opens the maildrop, even one that only logs in and quits; no client command can avoid
    it.  Flags and content must stay exactly as they were.
    """
    assert after["flags"] == before["flags"]
    assert set(after["files"]) == set(before["files"])
    for unique, (sub, info, digest) in before["files"].items():
        after_sub, after_info, after_digest = after["files"][unique]
        assert (after_info, after_digest) == (info, digest), unique
        assert after_sub == sub or (sub, after_sub) == ("new", "cur"), unique


def pop3_sessions(dovecot, user, expected: int) -> list[dict[str, int]]:
    """The POP3 sessions of ``user`` as Dovecot logged them, once at least ``expected`` have been logged.

    ``quit`` is 1 for a session that ended with QUIT ("Logged out"), 0 for a dropped one.
    """
    pattern = re.compile(
        rf"pop3\({re.escape(user.name)}\)<\d+><[^>]*>: Info: Disconnected: (Logged out)?.*?"
        r"top=(\d+)/(\d+), retr=(\d+)/(\d+), del=(\d+)/(\d+)"
    )
    names = ("top", "top_bytes", "retr", "retr_bytes", "deleted", "messages")
    deadline = time.monotonic() + LOG_WAIT
    while True:
        text = dovecot.log_file.read_text(errors="replace")
        sessions = [
            {"quit": int(m.group(1) is not None)} | dict(zip(names, map(int, m.groups()[1:]), strict=True))
            for m in pattern.finditer(text)
        ]
        if len(sessions) >= expected or time.monotonic() > deadline:
            return sessions
        time.sleep(0.05)


def subdir(parent: Path, name: str) -> Path:
    path = parent / name
    path.mkdir()
    return path


def pop3_placements(catalog: Catalog, account: str = "pop") -> list[sqlite3.Row]:
    return catalog.db.execute(
        "SELECT p.uid, p.uidvalidity, p.blob_id, p.gone_since_run, p.internaldate, f.name FROM placements p "
        "JOIN folders f ON f.id = p.folder_id JOIN accounts a ON a.id = f.account_id WHERE a.name = ?",
        (account,),
    ).fetchall()


# -- backups -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("security", ["none", "starttls", "tls"])
def test_full_backup_over_each_transport_leaves_the_maildrop_as_it_was(
    dovecot, mail_user, tmp_path, security, config_file, open_archive
):
    fill_inbox(dovecot, mail_user, 40, seed=3)
    before = maildrop_state(dovecot, mail_user)
    assert any(not flags for flags in before["flags"].values())  # unseen mail is there to be spoiled

    config = parse_config(config_file(pop3_toml(dovecot, mail_user, security=security)))
    report = run_backup(config, config.account("pop"))
    assert report.status == "ok", report.problems
    assert report.messages_new == 40

    with open_archive(config) as archive:
        assert {uid: blob for (_f, uid), blob in archived_hashes(archive.catalog, "pop").items()} == server_by_uidl(
            dovecot, mail_user
        )
        rows = pop3_placements(archive.catalog)
        assert {row["name"] for row in rows} == {"INBOX"}
        assert {row["uidvalidity"] for row in rows} == {UIDL_UIDVALIDITY}
        assert all(row["internaldate"] for row in rows)  # from Received:/Date:, POP3 has no INTERNALDATE
        assert verify_archive(archive).ok
    assert_maildrop_unchanged(before, maildrop_state(dovecot, mail_user))
    (session,) = pop3_sessions(dovecot, mail_user, 1)
    assert session["deleted"] == 0 and session["retr"] == 0 and session["top"] == 40


def test_rerun_new_mail_and_server_deletion(dovecot, mail_user, tmp_path, config_file, open_archive):
    fill_inbox(dovecot, mail_user, 12, seed=4)
    config = parse_config(config_file(pop3_toml(dovecot, mail_user)))
    account = config.account("pop")
    assert run_backup(config, account).messages_new == 12

    again = run_backup(config, account)
    assert again.status == "ok" and again.messages_new == 0 and again.bytes_fetched == 0
    assert again.folders[0].unchanged
    assert pop3_sessions(dovecot, mail_user, 2)[1]["top"] == 0  # the server says: nothing retrieved

    new_uids = dovecot.append_many(mail_user.name, "INBOX", [(b"Subject: new %d\r\n\r\nbody\r\n" % i, (), None)
                                                             for i in range(2)])  # fmt: skip
    client = dovecot.connect(mail_user.name, mail_user.password)
    client.select_folder("INBOX")
    deleted_uid = min(client.search(["ALL"]))
    client.delete_messages([deleted_uid])
    client.expunge()
    client.logout()
    validity = uidvalidity_of_inbox(dovecot, mail_user)

    third = run_backup(config, account)
    assert third.status == "ok", third.problems
    assert third.messages_new == 2 and third.folders[0].gone == 1
    assert pop3_sessions(dovecot, mail_user, 3)[2]["top"] == 2
    with open_archive(config) as archive:
        rows = {row["uid"]: row for row in pop3_placements(archive.catalog)}
        gone = rows[f"{deleted_uid:08x}{validity:08x}"]
        assert gone["gone_since_run"] == third.run_id  # kept, marked gone
        assert archive.store.exists(gone["blob_id"])
        assert all(f"{uid:08x}{validity:08x}" in rows for uid in new_uids)
        present = {uid: blob for (_f, uid), blob in archived_hashes(archive.catalog, "pop").items()}
        assert present == server_by_uidl(dovecot, mail_user)


def test_same_message_by_imap_and_pop3_is_one_blob(dovecot, mail_user, tmp_path, config_file, open_archive):
    fill_inbox(dovecot, mail_user, 25, seed=5)
    accounts = account_toml(dovecot, mail_user, name="imap") + pop3_toml(dovecot, mail_user, name="pop")
    config = parse_config(config_file(accounts))
    assert run_backup(config, config.account("imap")).status == "ok"
    report = run_backup(config, config.account("pop"))
    assert report.status == "ok" and report.messages_new == 25
    assert report.blobs_new == 0  # every POP3 message was already archived through IMAP
    with open_archive(config) as archive:
        imap_blobs = {blob for (folder, _uid), blob in archived_hashes(archive.catalog, "imap").items()}
        pop_blobs = set(archived_hashes(archive.catalog, "pop").values())
        assert pop_blobs == imap_blobs
        assert archive.catalog.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == len(imap_blobs)


def test_no_uidl_falls_back_to_fingerprints_and_says_so(dovecot, mail_user, tmp_path, config_file, archive):
    fill_inbox(dovecot, mail_user, 8, seed=6)
    raw = b"Subject: twin\r\n\r\nthe same bytes twice\r\n"
    dovecot.append_many(mail_user.name, "INBOX", [(raw, (), None), (raw, (), None)])
    config = parse_config(config_file(pop3_toml(dovecot, mail_user)))
    account = config.account("pop")

    def backup(archive):
        runner_source = Pop3Source(account, use_uidl=False)
        report = run_with_source(archive, account, runner_source)
        return report

    first = backup(archive)
    assert first.status == "ok", first.problems
    assert first.messages_new == 10 and first.blobs_new == 9  # the twins share a blob
    assert "no UIDL" in first.folders[0].note
    rows = pop3_placements(archive.catalog)
    assert {row["uidvalidity"] for row in rows} == {FINGERPRINT_UIDVALIDITY}
    assert all(row["uid"].startswith("fp:") for row in rows)
    second = backup(archive)
    assert second.messages_new == 0 and second.folders[0].unchanged
    # the server gains UIDL: the fingerprint placements are gone, the messages placed again by UIDL, no new blob
    third = run_backup(config, account, archive=archive)
    assert third.status == "ok" and third.messages_new == 10 and third.blobs_new == 0
    assert third.folders[0].gone == 10


def test_retr_fallback_ends_with_rset_so_nothing_is_marked_seen(
    dovecot, mail_user, tmp_path, config_file, open_archive
):
    """Without TOP the source uses RETR, which Dovecot turns into \\Seen at session end unless RSET clears it."""
    fill_inbox(dovecot, mail_user, 15, seed=8)
    before = maildrop_state(dovecot, mail_user)
    assert any(not flags for flags in before["flags"].values())
    config = parse_config(config_file(pop3_toml(dovecot, mail_user)))
    account = config.account("pop")
    with open_archive(config) as archive:
        report = run_with_source(archive, account, Pop3Source(account, fetch_command="RETR"))
        assert report.status == "ok" and report.messages_new == 15
        archived = {uid: blob for (_f, uid), blob in archived_hashes(archive.catalog, "pop").items()}
    assert archived == server_by_uidl(dovecot, mail_user)
    (session,) = pop3_sessions(dovecot, mail_user, 1)
    assert session["retr"] == 15 and session["deleted"] == 0
    assert_maildrop_unchanged(before, maildrop_state(dovecot, mail_user))


def test_message_expunged_during_the_session_is_skipped_and_retried(
    dovecot, mail_user, tmp_path, config_file, open_archive
):
    """An IMAP client deletes a message after our LIST: that one is reported, the others are archived."""
    fill_inbox(dovecot, mail_user, 6, seed=9)
    config = parse_config(config_file(pop3_toml(dovecot, mail_user)))
    account = config.account("pop")

    class ExpungeAfterListing(Pop3Source):
        def listing(self):
            entries = super().listing()
            client = dovecot.connect(mail_user.name, mail_user.password)
            client.select_folder("INBOX")
            client.delete_messages([max(client.search(["ALL"]))])
            client.expunge()
            client.logout()
            return entries

    with open_archive(config) as archive:
        report = run_with_source(archive, account, ExpungeAfterListing(account))
        assert report.folders[0].error and "refused 1 message" in report.folders[0].error
        assert report.messages_new == 5
        again = run_with_source(archive, account, Pop3Source(account))
        assert again.status == "ok" and again.messages_new == 0 and not again.folders[0].error
        archived = {uid: blob for (_f, uid), blob in archived_hashes(archive.catalog, "pop").items()}
    assert archived == server_by_uidl(dovecot, mail_user)


def run_with_source(archive, account, source):
    """A run like ``run_backup`` with a given source (to force the fallbacks Dovecot does not need)."""
    from archiver.backup import Progress, RunReport

    report = RunReport(account.name)
    account_id = archive.catalog.ensure_account(account.name, account.protocol)
    report.run_id = archive.catalog.start_run(account_id)
    runner = Pop3Backup(archive, account, report.run_id, account_id, Progress(), source=source)
    try:
        runner.run(report)
    finally:
        runner.close()
    failed = any(folder.error for folder in report.folders)
    report.status = "partial" if failed else "ok"
    archive.catalog.finish_run(report.run_id, report.status, 1, 0, int(failed))
    run = archive.catalog.run(report.run_id)
    report.messages_new, report.blobs_new = run["messages_new"], run["blobs_new"]
    return report


# -- byte exactness -----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_corpus_pop3_bytes_equal_imap_body_bytes(dovecot, mail_user, tmp_path, corpus_dir, config_file, open_archive):
    """Every corpus message: TOP-all and RETR bytes == IMAP BODY[] (dot-stuffing, bare CR/LF, no final EOL)."""
    messages = [raw for _name, raw in corpus_messages(corpus_dir)]
    dovecot.append_many(mail_user.name, "INBOX", ((raw, (), None) for raw in messages))
    expected = server_by_uidl(dovecot, mail_user)
    assert len(expected) == len(messages)
    config = parse_config(config_file(pop3_toml(dovecot, mail_user, security="none")))
    account = config.account("pop")
    for command in ("TOP", "RETR"):
        with Pop3Source(account, fetch_command=command) as source:
            assert source.fetch_command == command
            got = {entry.key: hashlib.sha256(source.fetch(entry)).hexdigest() for entry in source.listing()}
        mismatched = sorted(uidl for uidl in expected if got.get(uidl) != expected[uidl])
        assert not mismatched, f"{command}: {len(mismatched)} message(s) differ, e.g. {mismatched[:5]}"
    # and end to end: what the backup stores is what IMAP serves
    report = run_backup(config, account)
    assert report.status == "ok", report.problems
    with open_archive(config) as archive:
        assert {uid: blob for (_f, uid), blob in archived_hashes(archive.catalog, "pop").items()} == expected


# -- SIGKILL then resume ------------------------------------------------------------------------------------------
def placement_count(catalog_path: Path) -> int:
    if not catalog_path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{catalog_path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM placements").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_downloads_nothing_twice(
    dovecot, mail_user, tmp_path, config_file, cli, open_archive
):
    total = 300
    fill_inbox(dovecot, mail_user, total, seed=7)
    before = maildrop_state(dovecot, mail_user)
    path = config_file(pop3_toml(dovecot, mail_user, security="none"), "batch_messages = 10")
    config = parse_config(path)
    catalog_path = Path(config.archive.path) / Catalog.FILENAME
    command = cli.command(path, "backup")

    counts = []
    for _kill in range(3):
        floor = counts[-1] if counts else 0
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while process.poll() is None and placement_count(catalog_path) <= floor and time.monotonic() < deadline:
            time.sleep(0.01)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        with open_archive(config) as archive:
            assert verify_archive(archive).ok  # consistent at every kill point
        counts.append(placement_count(catalog_path))
    assert counts == sorted(counts) and counts[0] > 0
    assert counts[0] < total  # the first kill landed mid-run

    result = cli(path, "backup")
    assert result.returncode == 0, result.stderr
    with open_archive(config) as archive:
        assert {uid: blob for (_f, uid), blob in archived_hashes(archive.catalog, "pop").items()} == server_by_uidl(
            dovecot, mail_user
        )
        statuses = [row["status"] for row in archive.catalog.db.execute("SELECT status FROM runs ORDER BY id")]
        assert statuses[-1] == "ok" and "interrupted" in statuses
        assert list(archive.store.temp_dir.iterdir()) == []
    sessions = pop3_sessions(dovecot, mail_user, 4)
    last = [s for s in sessions if s["quit"]][-1]  # the killed sessions never QUIT
    assert last["top"] == total - counts[-1]  # the resumed run fetched only what no earlier run had committed
    assert_maildrop_unchanged(before, maildrop_state(dovecot, mail_user))  # killed sessions marked nothing


# -- authentication and errors ------------------------------------------------------------------------------------
def one_clear_line(result, *needles: str) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("archiver:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_wrong_password_is_one_clear_line(dovecot, mail_user, tmp_path, config_file, cli):
    secret = "Wr0ng-Pop-Passw0rd"
    path = config_file(pop3_toml(dovecot, mail_user, password=secret))
    result = cli(path, "backup")
    one_clear_line(result, "login refused", repr(mail_user.name), f"127.0.0.1:{dovecot.pop3_port}")
    assert secret not in result.stderr + result.stdout


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_untrusted_certificate_is_one_clear_line(dovecot, mail_user, tmp_path, security, config_file, cli):
    toml = pop3_toml(dovecot, mail_user, security=security).replace(f'tls_ca_file = "{dovecot.ca_file}"\n', "")
    result = cli(config_file(toml), "backup")
    one_clear_line(result, "certificate", "not trusted", "tls_ca_file")


def test_closed_port_and_timeout_are_one_clear_line(dovecot, mail_user, tmp_path, cli):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    toml = pop3_toml(dovecot, mail_user).replace(f"port = {dovecot.pop3_port}", f"port = {closed}")
    one_clear_line(cli(write_config(subdir(tmp_path, "a"), toml), "backup"), "connection refused", str(closed))
    with socket.socket() as silent:  # accepts connections (backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        toml = pop3_toml(dovecot, mail_user).replace(f"port = {dovecot.pop3_port}", f"port = {port}")
        toml = toml.replace("timeout = 20", "timeout = 1")
        one_clear_line(cli(write_config(subdir(tmp_path, "b"), toml), "backup"), "timed out", str(port))


def test_apop_required_but_not_offered(dovecot, mail_user, tmp_path, config_file, cli):
    path = config_file(pop3_toml(dovecot, mail_user, extra='pop3_auth = "apop"'))
    one_clear_line(cli(path, "backup"), "does not offer APOP", 'pop3_auth = "user"')


def test_apop_used_when_offered(tmp_path, mail_user, config_file, cli):
    """A second Dovecot that offers APOP (it needs the plain password, which the sandbox's passwd-file has)."""
    from archiver.devtools.sandbox import DovecotSandbox

    class ApopSandbox(DovecotSandbox):
        def _config_text(self) -> str:
            return super()._config_text().replace("auth_mechanisms = plain login", "auth_mechanisms = plain login apop")

    with ApopSandbox(tmp_path / "apop-dovecot") as sandbox:
        sandbox.add_user(mail_user.name, mail_user.password)
        sandbox.append(mail_user.name, "INBOX", b"Subject: apop\r\n\r\nhello\r\n")
        config = parse_config(config_file(pop3_toml(sandbox, mail_user, security="none")))
        account = config.account("pop")
        with Pop3Source(account) as source:
            assert source.auth_method == "APOP"
        report = run_backup(config, account)
        assert report.status == "ok" and report.messages_new == 1
        wrong = write_config(
            subdir(tmp_path, "w"), pop3_toml(sandbox, mail_user, security="none", password="nope-nope")
        )
        one_clear_line(cli(wrong, "backup"), "login refused", 'pop3_auth = "user"')
        assert "method=APOP" in sandbox.log_file.read_text()
