"""Faults from outside the process: the server drops the connection, the disk fills up.

Both must leave a consistent archive, give a clear one-line error, and let the
next run finish the job without downloading again what was committed.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from archiver.archive import Archive
from archiver.sample_mail import generate_mailbox
from archiver.verify import verify_archive
from tests.integration.helpers import account_toml, archived_hashes, load, run_cli, server_hashes, write_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _fill(dovecot, user, count: int, seed: int) -> list[str]:
    by_folder: dict[str, list] = defaultdict(list)
    for sample in generate_mailbox(count, seed=seed):
        by_folder[sample.folder].append((sample.raw, sample.flags, sample.internaldate))
    for folder, items in by_folder.items():
        dovecot.append_many(user.name, folder, items)
    return sorted(by_folder)


def _placement_count(archive_dir: Path) -> int:
    catalog = archive_dir / "catalog.sqlite3"
    if not catalog.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT count(*) FROM placements").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def _imap_session_pids(dovecot, user: str) -> list[int]:
    """Pids of the user's IMAP server processes, from ``doveadm who`` (we signal by pid only)."""
    listing = dovecot.doveadm("who", "-1", user).stdout.splitlines()[1:]
    return [int(fields[2]) for fields in (line.split() for line in listing) if len(fields) >= 3 and fields[1] == "imap"]


def test_dropped_connection_mid_run_then_next_run_completes(dovecot, mail_user, tmp_path):
    folders = _fill(dovecot, mail_user, 400, seed=23)
    path = write_config(tmp_path, account_toml(dovecot, mail_user), "batch_messages = 10")
    config = load(path)
    command = [sys.executable, "-m", "archiver", "--config", str(path), "backup"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _placement_count(config.archive.path) == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    killed = []
    for pid in _imap_session_pids(dovecot, mail_user.name):
        os.kill(pid, signal.SIGKILL)  # the server side of our connection dies: the client sees a dropped link
        killed.append(pid)
    _stdout, stderr = process.communicate(timeout=120)
    assert killed, "the backup finished before the connection could be dropped"
    assert "Traceback" not in stderr
    if process.returncode != 0:  # the folder being fetched failed; the run went on with a new connection
        assert "archiver: problem:" in stderr

    with Archive(config.archive) as archive:
        assert verify_archive(archive).ok
        committed = len(archived_hashes(archive.catalog))
    assert 0 < committed <= 400

    result = run_cli(path, "backup", "--json")
    assert result.returncode == 0, result.stderr
    with Archive(config.archive) as archive:
        assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, folders)
        assert verify_archive(archive).ok
        new_per_run = [r["messages_new"] for r in archive.catalog.db.execute("SELECT messages_new FROM runs")]
    assert sum(new_per_run) == 400  # nothing committed was downloaded again


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs for the archive (root only; skipped where mounting is not allowed)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_is_a_clear_error_and_the_next_run_finishes(dovecot, mail_user, tmp_path, small_disk):
    folders = _fill(dovecot, mail_user, 150, seed=5)
    accounts = account_toml(dovecot, mail_user)
    path = write_config(small_disk, accounts, "batch_messages = 10")
    config = load(path)
    total_raw = sum(len(raw) for raw, _flags, _date in dovecot.fetch_all(mail_user.name, None, "INBOX").values())
    assert total_raw > 0

    full = run_cli(path, "backup")
    assert full.returncode != 0
    assert "Traceback" not in full.stderr, full.stderr
    last_line = full.stderr.strip().splitlines()[-1]
    assert last_line.startswith("archiver: ") and "disk full" in last_line, full.stderr
    assert "free some space and run again" in last_line

    remount = subprocess.run(["mount", "-o", "remount,size=400m", str(small_disk)], capture_output=True, text=True)
    assert remount.returncode == 0, remount.stderr
    with Archive(config.archive) as archive:
        assert verify_archive(archive).ok  # what the full disk let through is consistent
        before = len(archived_hashes(archive.catalog))
    again = run_cli(path, "backup", "--json")
    assert again.returncode == 0, again.stderr
    with Archive(config.archive) as archive:
        assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, folders)
        assert verify_archive(archive).ok
        assert list(archive.store.temp_dir.iterdir()) == []
        new_per_run = [r["messages_new"] for r in archive.catalog.db.execute("SELECT messages_new FROM runs")]
    assert sum(new_per_run) == 150 and new_per_run[-1] == 150 - before
