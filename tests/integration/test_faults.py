"""Faults from outside the process: the server drops the connection, the disk fills up.

Both must leave a consistent archive and never download again what was committed.
A dropped connection is re-opened with backoff and the same run finishes the job;
a full disk stops the run at once with one clear line, and the next run (with
space) finishes it.  More server faults: ``test_faults_server.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from archiver.verify import verify_archive
from tests.fixtures.archives import archived_hashes, placement_count
from tests.fixtures.config import parse_config, write_config
from tests.fixtures.mail_server import account_toml, fill_folders, imap_session_pids, server_hashes

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_dropped_connection_mid_run_reconnects_and_the_same_run_completes(
    dovecot, mail_user, tmp_path, config_file, cli, open_archive
):
    folders = fill_folders(dovecot, mail_user, 400, seed=23)
    path = config_file(account_toml(dovecot, mail_user), "batch_messages = 10")
    config = parse_config(path)
    command = cli.command(path, "backup", "--json")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while placement_count(config.archive.path) == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    killed = []
    for pid in imap_session_pids(dovecot, mail_user.name):
        os.kill(pid, signal.SIGKILL)  # the server side of our connection dies: the client sees a dropped link
        killed.append(pid)
    stdout, stderr = process.communicate(timeout=120)
    assert killed, "the backup finished before the connection could be dropped"
    assert "Traceback" not in stderr
    assert process.returncode == 0, stderr  # reconnected and finished within the same run
    (report,) = json.loads(stdout)
    assert report["status"] == "ok" and report["problems"] == []
    warnings = [line for line in stderr.splitlines() if "reconnecting in 1s (attempt 1 of 5)" in line]
    assert warnings and " WARNING " in warnings[0], stderr

    with open_archive(config) as archive:
        assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, folders)
        assert verify_archive(archive).ok
        runs = archive.catalog.db.execute("SELECT status, messages_new FROM runs").fetchall()
    assert [tuple(r) for r in runs] == [("ok", 400)]  # one run; nothing committed was downloaded again

    again = cli(path, "backup", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)[0]["messages_new"] == 0


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


def test_disk_full_is_a_clear_error_and_the_next_run_finishes(
    dovecot, mail_user, tmp_path, small_disk, cli, open_archive
):
    folders = fill_folders(dovecot, mail_user, 150, seed=5)
    accounts = account_toml(dovecot, mail_user)
    path = write_config(small_disk, accounts, "batch_messages = 10")
    config = parse_config(path)
    total_raw = sum(len(raw) for raw, _flags, _date in dovecot.fetch_all(mail_user.name, None, "INBOX").values())
    assert total_raw > 0

    full = cli(path, "backup", "--json")
    assert full.returncode != 0
    assert "Traceback" not in full.stderr, full.stderr
    last_line = full.stderr.strip().splitlines()[-1]
    assert last_line.startswith("archiver: ") and "disk full" in last_line, full.stderr
    assert "free some space and run again" in last_line
    # The run stopped at the first failure: one problem line, and no folder tried after the failing one.
    shown = [line for line in full.stderr.splitlines() if line.startswith("archiver: ") and "disk full" in line]
    assert len(shown) == 1, full.stderr
    (report,) = json.loads(full.stdout)
    assert report["status"] == "failed" and len(report["problems"]) == 1
    failed = [f["name"] for f in report["folders"] if f["error"]]
    assert failed == [report["folders"][-1]["name"]]
    on_server = dovecot.doveadm("mailbox", "list", "-u", mail_user.name).stdout.splitlines()
    assert len(report["folders"]) < len(on_server)  # the folders after the failing one were not tried

    remount = subprocess.run(["mount", "-o", "remount,size=400m", str(small_disk)], capture_output=True, text=True)
    assert remount.returncode == 0, remount.stderr
    with open_archive(config) as archive:
        assert verify_archive(archive).ok  # what the full disk let through is consistent
        before = len(archived_hashes(archive.catalog))
    again = cli(path, "backup", "--json")
    assert again.returncode == 0, again.stderr
    with open_archive(config) as archive:
        assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, folders)
        assert verify_archive(archive).ok
        assert list(archive.store.temp_dir.iterdir()) == []
        new_per_run = [r["messages_new"] for r in archive.catalog.db.execute("SELECT messages_new FROM runs")]
    assert sum(new_per_run) == 150 and new_per_run[-1] == 150 - before
