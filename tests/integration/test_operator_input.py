"""Operator mistakes (huge or endless password sources, a FIFO, a file as archive, a read-only archive):
one clear line and the documented exit code, quickly and in bounded memory, never a traceback or a hang."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.config import write_config
from tests.fixtures.mail_server import account_toml

pytestmark = pytest.mark.integration

ADDRESS_SPACE_LIMIT = 512 * 1024 * 1024  # Python with archiver's imports needs < 256 MB of it
LOCAL_ACCOUNT = '\n[[accounts]]\nname = "local"\nprotocol = "local"\n'


def one_clear_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("archiver:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def config_with_password(tmp_path: Path, dovecot, user, password_line: str) -> Path:
    toml = account_toml(dovecot, user).replace(f"password = {json.dumps(user.password)}", password_line)
    return write_config(tmp_path, toml)


def _limit_address_space() -> None:
    """Runs in the child before exec: a reader that buffers the output dies of MemoryError instead of passing."""
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


@pytest.mark.parametrize(
    "command",
    ["head -c 500000000 /dev/zero", "yes"],  # 500 MB, then endless
    ids=["500MB", "endless"],
)
def test_password_command_printing_too_much_stops_at_the_cap(dovecot, mail_user, tmp_path, command, cli) -> None:
    """Bounded in time, and in memory by an address-space limit on the archiver process.

    The limit, not the child's ``ru_maxrss``: a child started by ``vfork`` inherits the
    parent's high-water mark, so that figure measured pytest's own size, not the reader's.
    """
    config = config_with_password(tmp_path, dovecot, mail_user, f"password_command = {json.dumps(command)}")
    started = time.monotonic()
    result = subprocess.run(
        cli.command(config, "backup"),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_address_space,
    )
    seconds = time.monotonic() - started
    line = one_clear_line(result, "accounts[0].password_command", "more than 64 KiB")
    assert "\x00" not in line and "yyy" not in line
    assert seconds < 15, seconds


def test_password_file_dev_zero_is_refused(dovecot, mail_user, tmp_path, cli) -> None:
    config = config_with_password(tmp_path, dovecot, mail_user, 'password_file = "/dev/zero"')
    result = cli(config, "backup", timeout=30)
    one_clear_line(result, "accounts[0].password_file", "/dev/zero is a character device, not a regular file")


def test_password_file_fifo_without_writer_does_not_hang(dovecot, mail_user, tmp_path, cli) -> None:
    fifo = tmp_path / "pw.fifo"
    os.mkfifo(fifo, 0o600)
    config = config_with_password(tmp_path, dovecot, mail_user, f"password_file = {json.dumps(str(fifo))}")
    try:
        result = cli(config, "backup", timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("a FIFO password_file with no writer hung the backup")
    one_clear_line(result, "accounts[0].password_file", "is a named pipe (FIFO), not a regular file")


def test_password_file_directory_is_refused(dovecot, mail_user, tmp_path, cli) -> None:
    config = config_with_password(tmp_path, dovecot, mail_user, f"password_file = {json.dumps(str(tmp_path))}")
    one_clear_line(cli(config, "backup", timeout=30), "is a directory, not a regular file")


@pytest.mark.parametrize("args", [("backup",), ("status",), ("verify",), ("search", "x"), ("ls", "--account", "local")])
def test_archive_path_that_is_a_file_exits_2(tmp_path, args, config_file, cli) -> None:
    (tmp_path / "archive").write_text("not an archive\n")
    config = config_file(LOCAL_ACCOUNT)
    result = cli(config, *args, timeout=60)
    one_clear_line(result, f"archive path {tmp_path / 'archive'} is not a directory")
    assert result.returncode == 2


def _without_write_access() -> list[str]:
    """A command prefix under which the archive's missing write bits hold (root: drop every capability)."""
    if os.getuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permission bits cannot be enforced")
    return [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--"]


def _make_readonly(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | 0o200 if writable else mode & ~0o222)


def test_search_ls_status_verify_work_on_an_archive_the_user_cannot_write(tmp_path, config_file, cli) -> None:
    mails = tmp_path / "mails"
    mails.mkdir()
    for number, word in enumerate(("marmalade", "quince", "bergamot")):
        (mails / f"{number}.eml").write_bytes(
            f"From: a@example.org\r\nTo: b@example.org\r\nSubject: jam {number}\r\n"
            f"Message-ID: <{number}@example.org>\r\n\r\nThe {word} is ready.\r\n".encode()
        )
    config = config_file(LOCAL_ACCOUNT)
    imported = cli(config, "import", "--account", "local", str(mails))
    assert imported.returncode == 0, imported.stderr
    archive = tmp_path / "archive"
    prefix = _without_write_access()
    _make_readonly(archive, writable=False)
    try:
        base = [*prefix, *cli.command(config)]
        probe = subprocess.run([*prefix, "sh", "-c", f"touch {archive}/probe"], capture_output=True, check=False)
        assert probe.returncode != 0, "the archive is still writable: the test would prove nothing"
        search = subprocess.run([*base, "search", "--json", "quince"], capture_output=True, text=True, timeout=60)
        assert search.returncode == 0, search.stderr
        hits = json.loads(search.stdout)["hits"]
        assert [hit["subject"] for hit in hits] == ["jam 1"]
        listing = subprocess.run([*base, "ls", "--account", "local"], capture_output=True, text=True, timeout=60)
        assert listing.returncode == 0, listing.stderr
        assert "jam 2" in listing.stdout
        status = subprocess.run([*base, "status"], capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        assert "local: 3 message(s)" in status.stdout
        verify = subprocess.run([*base, "verify"], capture_output=True, text=True, timeout=60)
        assert verify.returncode == 0, verify.stderr
        assert "checked 3 blob(s)" in verify.stdout and "OK" in verify.stdout
        # While another process (the daemon, a backup) holds the catalog open, its -wal/-shm exist and are read.
        with contextlib.closing(sqlite3.connect(archive / "catalog.sqlite3")) as writer:
            writer.execute("SELECT count(*) FROM messages").fetchone()
            assert (archive / "catalog.sqlite3-shm").exists()
            during = subprocess.run([*base, "search", "--json", "bergamot"], capture_output=True, text=True, timeout=60)
            assert during.returncode == 0, during.stderr
            assert [hit["subject"] for hit in json.loads(during.stdout)["hits"]] == ["jam 2"]
    finally:
        _make_readonly(archive, writable=True)


def test_backup_without_write_access_exits_2_naming_what_still_works(tmp_path, config_file, cli) -> None:
    config = config_file(LOCAL_ACCOUNT)
    assert cli(config, "status").returncode == 0  # creates the empty archive
    archive = tmp_path / "archive"
    prefix = _without_write_access()
    _make_readonly(archive, writable=False)
    try:
        base = [*prefix, *cli.command(config)]
        result = subprocess.run([*base, "reindex"], capture_output=True, text=True, timeout=60)
        one_clear_line(result, f"cannot write to the archive {archive}: permission denied", "search, ls")
        assert result.returncode == 2
    finally:
        _make_readonly(archive, writable=True)


def test_archive_that_cannot_be_created_exits_2(tmp_path, cli) -> None:
    parent = tmp_path / "locked"
    parent.mkdir(mode=0o555)
    text = f'[archive]\npath = "{parent / "archive"}"\n{LOCAL_ACCOUNT}'
    config = tmp_path / "archiver.toml"
    config.write_text(text)
    command = [*_without_write_access(), *cli.command(config, "status")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    one_clear_line(result, f"cannot create the archive in {parent / 'archive'}: Permission denied")
    assert result.returncode == 2
