"""Server-side faults in the middle of a run: the run reconnects with backoff and finishes what it can.

The Dovecot fixture is session-wide: a test that kills it starts it again on the same
ports in ``finally`` (:func:`_server_back`), so later tests find it as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from archiver.archive import Archive
from archiver.backup import Progress, run_backup
from archiver.verify import verify_archive
from tests.fixtures.archives import archived_hashes, placement_count
from tests.fixtures.cli import archiver_command
from tests.fixtures.config import parse_config
from tests.fixtures.mail_server import account_toml, fill_folders, fill_inbox, pop3_toml, server_by_uidl, server_hashes

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _start_backup(path: Path) -> subprocess.Popen:
    command = archiver_command(path, "backup", "--json")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_first_commit(archive_dir: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while placement_count(archive_dir) == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the backup finished before the fault could be injected"


def _kill_server(dovecot) -> None:
    """SIGKILL the Dovecot master and its whole process group (its IMAP processes too), by pid."""
    pid = dovecot.pid
    assert pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


@contextlib.contextmanager
def _server_back(dovecot):
    """Whatever happens in the block, Dovecot runs again afterwards, on the same ports."""
    ports = (dovecot.imap_port, dovecot.imaps_port, dovecot.pop3_port, dovecot.pop3s_port)
    try:
        yield
    finally:
        dovecot.restart()
        assert (dovecot.imap_port, dovecot.imaps_port, dovecot.pop3_port, dovecot.pop3s_port) == ports


def _runs(archive: Archive) -> list[dict]:
    return [dict(r) for r in archive.catalog.db.execute("SELECT * FROM runs ORDER BY id")]


def test_server_killed_mid_fetch_and_restarted_the_same_run_completes(
    dovecot, mail_user, tmp_path, config_file, open_archive
):
    folders = fill_folders(dovecot, mail_user, 400, seed=31)
    path = config_file(account_toml(dovecot, mail_user), "batch_messages = 10")
    config = parse_config(path)
    process = _start_backup(path)
    with _server_back(dovecot):
        _wait_for_first_commit(config.archive.path, process)
        _kill_server(dovecot)
        dovecot.stop()  # reaps the master and waits until the port is closed: reconnects are refused now
        time.sleep(1.5)  # past the first wait (1 s): at least one attempt meets a closed port
    stdout, stderr = process.communicate(timeout=180)

    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    (report,) = json.loads(stdout)
    assert report["status"] == "ok" and report["problems"] == []
    attempts = [line for line in stderr.splitlines() if "reconnecting in" in line]
    assert attempts and all(" WARNING " in line for line in attempts), stderr
    assert any("connection refused" in line for line in attempts), attempts  # the backoff outlasted the restart
    with open_archive(config) as archive:
        assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, folders)
        assert verify_archive(archive).ok
        (run,) = _runs(archive)  # one run did it all
    # Nothing committed was recorded twice: a placement fetched again would count again (ON CONFLICT … UPDATE).
    assert run["status"] == "ok" and run["messages_new"] == 400


def test_reconnect_gives_up_with_one_clear_line_and_the_next_run_completes(
    dovecot, mail_user, tmp_path, config_file, cli, open_archive
):
    folders = fill_folders(dovecot, mail_user, 300, seed=37)
    path = config_file(account_toml(dovecot, mail_user), "batch_messages = 10\nreconnect_attempts = 2")
    config = parse_config(path)
    process = _start_backup(path)
    with _server_back(dovecot):
        _wait_for_first_commit(config.archive.path, process)
        dovecot.stop()  # and stays down longer than the two attempts (1 s + 2 s)
        _stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 1
    assert "Traceback" not in stderr
    problems = [line for line in stderr.splitlines() if line.startswith("archiver: problem:")]
    assert len(problems) == 1, stderr
    assert "2 reconnect attempt(s) failed" in problems[0] and "connection refused" in problems[0]
    assert len([line for line in stderr.splitlines() if "reconnecting in" in line]) == 2
    with open_archive(config) as archive:
        assert verify_archive(archive).ok
        assert _runs(archive)[-1]["status"] == "failed"
        committed = len(archived_hashes(archive.catalog))
    assert 0 < committed < 300

    again = cli(path, "backup")
    assert again.returncode == 0, again.stderr
    with open_archive(config) as archive:
        assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, folders)
        assert verify_archive(archive).ok
        runs = _runs(archive)
    assert sum(r["messages_new"] for r in runs) == 300  # nothing committed was downloaded again


def _maildir_file(dovecot, user, uid: int) -> Path:
    """The file of INBOX's message ``uid``: for Maildir, Dovecot's GUID is the file name up to ``:2,``."""
    listing = dovecot.doveadm("fetch", "-u", user.name, "uid guid", "mailbox", "INBOX", "uid", str(uid))
    guid = next(line.split(": ", 1)[1] for line in listing.stdout.splitlines() if line.startswith("guid: "))
    root = dovecot.maildir(user.name)
    (found,) = [p for sub in ("cur", "new") for p in (root / sub).iterdir() if p.name.split(":2,")[0] == guid]
    return found


def test_a_message_the_server_cannot_read_is_an_error_and_retried_next_run(
    dovecot, mail_user, tmp_path, config_file, cli, open_archive
):
    """A message file Dovecot cannot read makes it answer ``BYE Internal error`` and hang up, every time.

    The run isolates that one message (its batch is fetched message by message after dropping the
    connection twice), archives everything else, and says which UID it could not get; once the file is
    readable again the next run fetches exactly that message.
    """
    folders = fill_folders(dovecot, mail_user, 200, seed=41)
    path = config_file(account_toml(dovecot, mail_user), "batch_messages = 10")
    config = parse_config(path)
    inbox_uids = sorted(dovecot.fetch_all(mail_user.name, mail_user.password, "INBOX"))
    bad_uid = inbox_uids[len(inbox_uids) // 2]
    bad_file = _maildir_file(dovecot, mail_user, bad_uid)
    mode = bad_file.stat().st_mode
    bad_file.chmod(0)
    try:
        first = cli(path, "backup", "--json")
    finally:
        bad_file.chmod(mode)

    assert first.returncode == 1 and "Traceback" not in first.stderr
    (report,) = json.loads(first.stdout)
    assert report["status"] == "partial"
    assert report["problems"] == [
        f"acct: folder 'INBOX': the server did not return 1 message(s) (UIDs [{bad_uid}]); retried next run"
    ]
    with open_archive(config) as archive:
        assert verify_archive(archive).ok
        expected = server_hashes(dovecot, mail_user, folders)
        assert archived_hashes(archive.catalog) == {k: v for k, v in expected.items() if k != ("INBOX", bad_uid)}

    again = cli(path, "backup", "--json")
    assert again.returncode == 0, again.stderr
    (report,) = json.loads(again.stdout)
    assert report["messages_new"] == 1
    with open_archive(config) as archive:
        assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, folders)
        assert verify_archive(archive).ok
        assert sum(r["messages_new"] for r in _runs(archive)) == 200


class _SlowProgress(Progress):
    """Makes each committed batch take a while, so a short time limit is crossed for certain."""

    def advance(self, messages: int, size: int) -> None:
        time.sleep(0.05)


def test_run_time_limit_stops_after_a_committed_batch_and_the_next_run_continues(
    dovecot, mail_user, tmp_path, config_file, open_archive
):
    folders = fill_folders(dovecot, mail_user, 300, seed=43)
    path = config_file(account_toml(dovecot, mail_user), 'batch_messages = 5\nmax_run_time = "1s"')
    config = parse_config(path)
    assert config.archive.max_run_time == 1
    (account,) = config.accounts

    report = run_backup(config, account, progress=_SlowProgress(), index=False)  # 60 batches x 50 ms > 1 s
    assert report.status == "partial"
    assert report.problems == ["acct: stopped after the run time limit (1s); the next run continues"]
    with open_archive(config) as archive:
        assert verify_archive(archive).ok
        committed = len(archived_hashes(archive.catalog))
        assert _runs(archive)[-1]["status"] == "partial"
        errors = archive.catalog.run_errors(report.run_id)
        assert [e["message"] for e in errors] == report.problems
    assert 0 < committed < 300

    unbounded = replace(config, archive=replace(config.archive, max_run_time=None))
    report = run_backup(unbounded, account, index=False)
    assert report.status == "ok", report.problems
    with open_archive(config) as archive:
        assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, folders)
        assert verify_archive(archive).ok
        runs = _runs(archive)
    assert [r["messages_new"] for r in runs] == [committed, 300 - committed]


def test_pop3_dropped_connection_reconnects_and_the_same_run_completes(
    dovecot, mail_user, tmp_path, config_file, open_archive
):
    fill_inbox(dovecot, mail_user, 300, seed=53)
    path = config_file(pop3_toml(dovecot, mail_user, security="none"), "batch_messages = 10")
    config = parse_config(path)
    process = _start_backup(path)
    _wait_for_first_commit(config.archive.path, process)
    listing = dovecot.doveadm("who", "-1", mail_user.name).stdout.splitlines()[1:]
    pids = [int(f[2]) for f in (line.split() for line in listing) if len(f) >= 3 and f[1] == "pop3"]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)  # the server side of the POP3 session dies
    stdout, stderr = process.communicate(timeout=120)

    assert pids, "no POP3 session found to drop"
    assert process.returncode == 0, stderr
    (report,) = json.loads(stdout)
    assert report["status"] == "ok" and report["messages_new"] == 300
    assert any("reconnecting in 1s (attempt 1 of 5)" in line for line in stderr.splitlines()), stderr
    with open_archive(config) as archive:
        archived = {uid: blob for (_f, uid), blob in archived_hashes(archive.catalog, "pop").items()}
        assert archived == server_by_uidl(dovecot, mail_user)
        assert verify_archive(archive).ok


def test_a_message_expunged_between_search_and_fetch_is_an_error_then_simply_gone(
    dovecot, mail_user, tmp_path, monkeypatch, config_file, open_archive
):
    """The race of a second client expunging a message after our UID SEARCH, before our FETCH.

    Dovecot then answers the FETCH with the message's FLAGS but no body (``EXPUNGEISSUED``). The
    re-run (QRESYNC path) records it as not returned, status partial; the next run finds it gone
    from the server and has nothing left to retry.  The second client's timing is made exact by
    hooking our own fetch, not the server.
    """
    import archiver.sources.imap as imap

    folders = fill_folders(dovecot, mail_user, 60, seed=59)
    path = config_file(account_toml(dovecot, mail_user), "batch_messages = 10")
    config = parse_config(path)
    (account,) = config.accounts
    assert run_backup(config, account, index=False).status == "ok"
    for n in range(25):
        raw = f"Subject: new {n}\r\nMessage-ID: <new{n}@x>\r\n\r\nbody {n}\r\n".encode()
        dovecot.append(mail_user.name, "INBOX", raw)

    original = imap.ImapSource.fetch
    raced: list[int] = []

    def fetch_after_a_race(self, uids):
        if not raced:
            raced.append(uids[len(uids) // 2])
            other = dovecot.connect(mail_user.name, mail_user.password)
            try:
                other.select_folder("INBOX")
                other.delete_messages(raced)
                other.expunge()
            finally:
                other.logout()
        return original(self, uids)

    monkeypatch.setattr(imap.ImapSource, "fetch", fetch_after_a_race)
    report = run_backup(config, account, index=False)
    monkeypatch.undo()
    assert raced
    assert report.status == "partial"
    assert report.problems == [
        f"acct: folder 'INBOX': the server did not return 1 message(s) (UIDs [{raced[0]}]); retried next run"
    ]
    assert report.messages_new == 24

    report = run_backup(config, account, index=False)
    assert report.status == "ok" and report.problems == [] and report.messages_new == 0
    with open_archive(config) as archive:
        assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, folders)
        assert verify_archive(archive).ok
