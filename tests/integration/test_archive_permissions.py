"""The archive holds every word of every message: other local users must not read any of it.

Made by a real backup under the usual umask 022, every directory is 0700 and
every file 0600 (SQLite's -wal/-shm and Whoosh's segments included); a group
gets read access only when the operator asks for it; an exposed archive is
reported once on open.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.cli import archiver_command
from tests.fixtures.config import write_config
from tests.fixtures.mail_server import account_toml, fill_mailbox
from tests.fixtures.workers import wait_for_workers

pytestmark = pytest.mark.integration


def run_with_umask(config: Path, *args: str, umask: int = 0o022) -> subprocess.CompletedProcess:
    """The CLI as an operator's shell would start it: under ``umask`` (022 is the usual default)."""
    return subprocess.run(
        archiver_command(config, *args),
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: os.umask(umask),
    )


def modes(root: Path) -> dict[str, int]:
    """Mode bits of the archive directory and everything under it, by path relative to it."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def backed_up_archive(dovecot, mail_user, tmp_path: Path, archive_extra: str = "") -> tuple[Path, Path]:
    fill_mailbox(dovecot, mail_user, 40, seed=3)
    config = write_config(tmp_path, account_toml(dovecot, mail_user), archive_extra)
    first = run_with_umask(config, "backup")  # the index updated by the background worker it leaves
    assert first.returncode == 0, first.stderr
    assert not wait_for_workers()
    return config, tmp_path / "archive"


def test_backup_under_umask_022_makes_every_file_owner_only(dovecot, mail_user, tmp_path) -> None:
    config, archive = backed_up_archive(dovecot, mail_user, tmp_path)
    # A reader holding the catalog open keeps SQLite's -wal and -shm files on disk to be checked.
    reader = sqlite3.connect(f"file:{archive / 'catalog.sqlite3'}?mode=ro", uri=True)
    try:
        reader.execute("SELECT count(*) FROM messages").fetchone()
        fill_mailbox(dovecot, mail_user, 5, seed=4)
        for args in (("backup", "--wait-index"), ("search", "the"), ("verify",), ("status",), ("reindex",)):
            result = run_with_umask(config, *args)
            assert result.returncode == 0, (args, result.stderr)
            assert "accessible by" not in result.stderr, result.stderr
        found = modes(archive)
    finally:
        reader.close()
    assert {"catalog.sqlite3-wal", "catalog.sqlite3-shm", "index", "blobs", "locks"} <= set(found)
    assert {"index/worker.log", "index/worker.lock", "index/activity.json"} <= set(found)
    assert any(name.startswith("index/g-") for name in found), "no index segment was checked"
    assert any(name.startswith("blobs/") and len(Path(name).name) == 64 for name in found), "no blob was checked"
    exposed = {name: f"{mode:04o}" for name, mode in found.items() if mode & 0o077}
    assert not exposed, exposed
    directories = [name for name in found if (archive / name).is_dir()]
    assert all(found[name] == 0o700 for name in directories), {name: oct(found[name]) for name in directories}


def test_daemon_run_under_umask_022_makes_every_file_owner_only(dovecot, mail_user, tmp_path, config_file) -> None:
    fill_mailbox(dovecot, mail_user, 20, seed=5)
    config = config_file(account_toml(dovecot, mail_user))
    result = run_with_umask(config, "daemon", "--once", "acct")  # the scheduler's backup child, as systemd runs it
    assert result.returncode == 0, result.stderr
    found = modes(tmp_path / "archive")
    assert any(name.startswith("index/g-") for name in found), "no index segment was checked"
    assert not {name: f"{mode:04o}" for name, mode in found.items() if mode & 0o077}


def test_group_readable_archive_is_readable_by_the_group_only(dovecot, mail_user, tmp_path) -> None:
    config, archive = backed_up_archive(dovecot, mail_user, tmp_path, "group_readable = true\n")
    status = run_with_umask(config, "status", umask=0o077)
    assert status.returncode == 0 and "accessible by" not in status.stderr, status.stderr
    found = modes(archive)
    assert not {name: oct(mode) for name, mode in found.items() if mode & 0o007}
    assert found["."] == 0o750 and found["catalog.sqlite3"] == 0o640 and found["index"] == 0o750
    assert all(mode & 0o040 for mode in found.values()), "something the group cannot read"


def test_an_exposed_archive_warns_once_with_the_fix(dovecot, mail_user, tmp_path) -> None:
    config, archive = backed_up_archive(dovecot, mail_user, tmp_path)
    archive.chmod(0o755)  # as an archive made by an earlier version under umask 022
    result = run_with_umask(config, "status")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "accessible by" in line]
    assert len(warnings) == 1, result.stderr
    assert "others" in warnings[0] and "0755" in warnings[0] and f"chmod -R go-rwx {archive}" in warnings[0]


def test_export_output_is_owner_only_too(dovecot, mail_user, tmp_path) -> None:
    config, _ = backed_up_archive(dovecot, mail_user, tmp_path)
    out = tmp_path / "export"
    for fmt in ("mbox", "maildir", "eml"):
        result = run_with_umask(config, "export", "--account", "acct", "--format", fmt, "-o", str(out / fmt))
        assert result.returncode == 0, result.stderr
    found = modes(out)
    assert len(found) > 40, "too little exported to prove anything"
    assert not {name: f"{mode:04o}" for name, mode in found.items() if name != "." and mode & 0o077}
