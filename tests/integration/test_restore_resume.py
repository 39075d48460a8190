"""Restore SIGKILLed mid-way and run again: no duplicates, nothing missing; corpus messages byte exact."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import time
from datetime import UTC, datetime

import pytest

from archiver.backup import run_backup
from archiver.catalog import NewPlacement
from archiver.mail.headers import summarize_headers
from archiver.restore.execute import restore
from archiver.scope import Scope
from tests.fixtures.config import parse_config
from tests.fixtures.mail_server import account_toml, second_user, state, synthetic

pytestmark = pytest.mark.integration


def status_count(dovecot, user, folder) -> int:
    client = dovecot.connect(user.name, user.password)
    try:
        if not client.folder_exists(folder):
            return 0
        return client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"]
    finally:
        client.logout()


@pytest.mark.slow
def test_sigkilled_restore_resumes_without_duplicates(dovecot, mail_user, tmp_path, config_file, cli):
    dovecot.append_many(mail_user.name, "Big", synthetic(1500))
    expected = state(dovecot, mail_user, "Big")
    target = second_user(dovecot, mail_user)
    path = config_file(account_toml(dovecot, mail_user, name="src") + account_toml(dovecot, target, "dst"))
    config = parse_config(path)
    assert run_backup(config, config.accounts[0]).ok

    command = cli.command(path, "restore", "--account", "src")
    command += ["--to", "dst", "--prefix", "R"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    seen = 0
    while time.monotonic() < deadline and process.poll() is None:
        seen = status_count(dovecot, target, "R/Big")
        if seen > 0:
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    # A MULTIAPPEND the client had wholly sent is still committed by the server after the kill: count
    # once the folder has stopped changing, or the skip count below compares against a moving target.
    partial = status_count(dovecot, target, "R/Big")
    settle = time.monotonic() + 10
    while time.monotonic() < settle:
        time.sleep(0.5)
        now = status_count(dovecot, target, "R/Big")
        if now == partial:
            break
        partial = now
    assert 0 < partial < 1500, partial  # the kill landed mid-restore

    result = cli(path, "restore", "--account", "src", "--to", "dst", "--prefix", "R")
    assert result.returncode == 0, result.stderr
    assert state(dovecot, target, "R/Big") == expected
    assert f"skipped {partial}," in result.stdout.splitlines()[-1]


def test_corpus_restored_byte_exact(dovecot, mail_user, tmp_path, corpus_dir, config_file, open_archive):
    """Corpus messages as the server holds them, backed up then restored elsewhere: the same bytes."""
    from archiver.devtools.sample_mail import corpus_messages

    client = dovecot.connect(mail_user.name, mail_user.password)
    try:
        client.create_folder("Corpus")
        for _path, raw in corpus_messages(corpus_dir):
            try:
                client.append("Corpus", raw, ("\\Seen", "$Corpus"), datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC))
            except Exception:  # the server refuses a few (NUL bytes): they never were on an IMAP server
                continue
    finally:
        client.logout()
    expected = state(dovecot, mail_user, "Corpus")
    assert sum(expected.values()) > 1000
    target = second_user(dovecot, mail_user)
    path = config_file(account_toml(dovecot, mail_user, name="src") + account_toml(dovecot, target, "dst"))
    config = parse_config(path)
    with open_archive(config) as archive:
        assert run_backup(config, config.accounts[0], archive=archive).ok
        report = restore(archive, Scope("src"), config.account("dst"), prefix="C")
    assert report.ok, (report.problems, report.folders[0].failures[:5])
    assert state(dovecot, target, "C/Corpus") == expected


def test_stored_corpus_files_come_back_as_the_server_writes_them(
    dovecot, mail_user, tmp_path, corpus_dir, config_file, open_archive
):
    """Corpus files put straight into the store (as an import does) and restored: every server copy is
    the file itself, or, for files with bare LF line ends, the file with CRLF (IMAP's line end, which
    Dovecot writes); what the server refuses is reported per message, never dropped silently."""
    from archiver.devtools.sample_mail import corpus_messages

    config = parse_config(config_file(account_toml(dovecot, mail_user, name="acct")))
    raws = {hashlib.sha256(raw).hexdigest(): raw for _path, raw in corpus_messages(corpus_dir)}
    with open_archive(config) as archive:
        catalog = archive.catalog
        account_id = catalog.ensure_account("acct", "imap")
        run_id = catalog.start_run(account_id)
        folder = catalog.ensure_folder(account_id, "Corpus", "/", None, run_id)
        when = datetime(2020, 2, 3, 4, 5, 6, tzinfo=UTC).isoformat()
        items = list(raws.items())
        for start in range(0, len(items), 200):
            chunk = items[start : start + 200]
            stored = archive.store.put_batch([raw for _id, raw in chunk])
            placements = [
                NewPlacement(n + start + 1, b.blob_id, ("\\Seen",), when, b.size, b.stored_size, summarize_headers(r))
                for n, ((_id, r), b) in enumerate(zip(chunk, stored, strict=True))
            ]
            catalog.add_placements(run_id, folder.id, 1, placements)
        catalog.finish_run(run_id, "ok", 1, 0, 0)
        report = restore(archive, Scope("acct", folders=("Corpus",)), config.accounts[0], prefix="C")
    assert report.appended + report.failed == len(raws)
    assert len(report.folders[0].failures) == report.failed
    assert report.appended > 0.95 * len(raws), report.folders[0].failures[:5]
    crlf = {hashlib.sha256(_crlf(raw)).hexdigest() for raw in raws.values()}
    served = dovecot.fetch_all(mail_user.name, mail_user.password, "C/Corpus").values()
    assert len(served) == report.appended
    hashes = [hashlib.sha256(raw).hexdigest() for raw, _f, _d in served]
    # Dovecot rewrites NUL to 0x80 and bare CR: the only copies allowed to differ are of such files.
    odd = sum(1 for raw in raws.values() if b"\0" in raw or re.search(rb"\r(?!\n)", raw))
    assert sum(h not in raws and h not in crlf for h in hashes) <= odd
    unchanged = sum(1 for raw in raws.values() if raw == _crlf(raw) and b"\0" not in raw)
    assert sum(h in raws for h in hashes) >= unchanged - report.failed


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
