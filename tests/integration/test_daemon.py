"""``archiver daemon`` as a real process against Dovecot: schedules, SIGHUP, SIGTERM, restart, /metrics."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from archiver.catalog import Catalog
from archiver.devtools.sandbox import free_ports
from archiver.verify import verify_archive
from tests.fixtures.archives import archived_hashes
from tests.fixtures.cli import archiver_command
from tests.fixtures.config import parse_config
from tests.fixtures.mail_server import MailUser, account_toml, fill_mailbox, server_hashes

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def wait_for(condition: Callable[[], bool], timeout: float = 90.0, what: str = "condition", poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g} s")
        time.sleep(poll)


def fill(dovecot, user: MailUser, count: int, seed: int) -> list[str]:
    return sorted(fill_mailbox(dovecot, user, count, seed, folders=3))


def runs(archive_root: Path, account: str) -> list[dict]:
    if not (archive_root / Catalog.FILENAME).exists():
        return []
    catalog = Catalog.open(archive_root, readonly=True)
    try:
        rows = catalog.db.execute(
            "SELECT r.* FROM runs r JOIN accounts a ON a.id = r.account_id WHERE a.name = ? ORDER BY r.id", (account,)
        ).fetchall()
        return [dict(row) for row in rows]
    finally:
        catalog.close()


class DaemonProcess:
    def __init__(self, config_path: Path, log_path: Path, *args: str) -> None:
        self.log_path = log_path
        self.handle = log_path.open("ab")
        self.process = subprocess.Popen(
            archiver_command(config_path, "daemon", *args),
            stdout=self.handle,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)  # "a few seconds"; generous on a loaded machine
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.handle.close()


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()


def test_daemon_schedules_reloads_serves_metrics_and_stops(
    dovecot, mail_user, tmp_path, daemons, config_file, open_archive
):
    second = MailUser(f"{mail_user.name}b", mail_user.password + "b")
    dovecot.add_user(second.name, second.password)
    folders = {"one": fill(dovecot, mail_user, 30, seed=3), "two": fill(dovecot, second, 20, seed=4)}
    port = free_ports(1)[0]
    accounts = account_toml(dovecot, mail_user, "one", extra='schedule = "every 2s"') + account_toml(
        dovecot, second, "two", extra='schedule = "every 2s"'
    )
    extra = f'\n[scheduler]\njitter = 0\nmax_concurrent = 2\n\n[web]\nlisten = "127.0.0.1:{port}"\n'
    path = config_file(accounts + extra)
    root = tmp_path / "archive"
    daemon = DaemonProcess(path, tmp_path / "daemon.log")
    daemons.append(daemon)

    def finished_ok(account: str, at_least: int) -> bool:
        return sum(r["status"] == "ok" for r in runs(root, account)) >= at_least

    wait_for(lambda: finished_ok("one", 2) and finished_ok("two", 2), what="two good runs per account")
    for account in ("one", "two"):  # never overlapping itself
        done = [r for r in runs(root, account) if r["ended_at"]]
        assert all(b["started_at"] >= a["ended_at"] for a, b in itertools.pairwise(done)), account

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        metrics = response.read().decode()
    assert 'archiver_account_messages{account="one"} 30.0' in metrics
    assert 'archiver_account_messages{account="two"} 20.0' in metrics
    assert 'archiver_account_last_success_timestamp_seconds{account="one"}' in metrics
    assert 'archiver_runs_total{account="two",status="ok"}' in metrics

    # SIGHUP with a broken config: logged, old config kept, backups go on.
    good_text = path.read_text()
    path.write_text(good_text + "\n[scheduler]\nbroken = [\n")
    before = len(runs(root, "one"))
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "config reload failed, keeping the running config" in daemon.log(), what="reload error logged")
    wait_for(lambda: len(runs(root, "one")) >= before + 2, what="runs after a failed reload")
    assert daemon.process.poll() is None

    # SIGHUP with a valid config: account "two" switched off, "one" goes on.
    path.write_text(good_text.replace('schedule = "every 2s"\n', 'schedule = "off"\n'))
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "config reloaded" in daemon.log(), what="reload logged")
    assert "account not scheduled account=one schedule=off" in daemon.log()

    assert daemon.stop() == 0
    log = daemon.log()
    assert "daemon stopped" in log and "Traceback" not in log
    config = parse_config(path)
    with open_archive(config) as archive:
        for name, user in (("one", mail_user), ("two", second)):
            assert archived_hashes(archive.catalog, name) == server_hashes(dovecot, user, folders[name])
        assert verify_archive(archive).ok


def test_sigterm_mid_run_then_restart_completes_the_backup(
    dovecot, mail_user, tmp_path, daemons, config_file, open_archive
):
    folders = fill(dovecot, mail_user, 900, seed=12)
    path = config_file(account_toml(dovecot, mail_user, extra='schedule = "every 1h"'), "batch_messages = 10")
    root = tmp_path / "archive"
    daemon = DaemonProcess(path, tmp_path / "daemon.log", "--no-web")
    daemons.append(daemon)

    def archived() -> int:
        if not (root / Catalog.FILENAME).exists():
            return 0
        catalog = Catalog.open(root, readonly=True)
        try:
            return catalog.db.execute("SELECT COUNT(*) FROM placements WHERE gone_since_run IS NULL").fetchone()[0]
        except sqlite3.OperationalError:  # the schema is not there yet
            return 0
        finally:
            catalog.close()

    wait_for(lambda: archived() > 0, what="the first committed batch", poll=0.02)
    assert daemon.stop() == 0
    first = runs(root, "acct")
    assert [r["status"] for r in first] == ["interrupted"]  # stopped mid-run, and the run row says so
    assert "stopping backup account=acct" in daemon.log()
    with open_archive(path) as archive:
        assert verify_archive(archive).ok
    kept = archived()
    assert 0 < kept < 900

    # The restart sees the interrupted run is due and finishes the backup, fetching only what is missing.
    again = DaemonProcess(path, tmp_path / "daemon.log", "--no-web")
    daemons.append(again)
    wait_for(lambda: any(r["status"] == "ok" for r in runs(root, "acct")), what="the catch-up run")
    assert again.stop() == 0
    history = runs(root, "acct")
    assert [r["status"] for r in history] == ["interrupted", "ok"]
    assert history[1]["messages_new"] == 900 - kept
    with open_archive(path) as archive:
        assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, folders)
        assert verify_archive(archive).ok


def test_systemd_notify_protocol(tmp_path, daemons, cli):
    """READY=1, WATCHDOG=1, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM, over $NOTIFY_SOCKET."""
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(60)
    config = tmp_path / "archiver.toml"
    config.write_text(
        f'[archive]\npath = "{tmp_path / "archive"}"\n[[accounts]]\nname = "quiet"\nprotocol = "local"\n'
        'schedule = "off"\n'
    )
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "400000"}
    handle = (tmp_path / "daemon.log").open("wb")
    process = subprocess.Popen(
        cli.command(config, "daemon", "--no-web", "--log-format", "json"),
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:

        def next_message(prefix: str) -> str:
            while True:
                message = sock.recv(4096).decode()
                if message.startswith(prefix):
                    return message

        assert "STATUS=" in next_message("READY=1")
        next_message("WATCHDOG=1")
        process.send_signal(signal.SIGHUP)
        next_message("RELOADING=1")
        next_message("READY=1")
        process.send_signal(signal.SIGTERM)
        next_message("STOPPING=1")
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        handle.close()
        sock.close()
    lines = (tmp_path / "daemon.log").read_text().splitlines()
    events = [json.loads(line) for line in lines]  # --log-format json: every line is one JSON object
    assert any(e["msg"].startswith("config reloaded") for e in events)
    assert any(e["msg"] == "daemon stopped" for e in events)


def test_once_runs_one_scheduled_backup(dovecot, mail_user, tmp_path, config_file, cli):
    """``archiver daemon --once ACCOUNT`` (the systemd timer's command): one run, exit status from its outcome."""
    dovecot.append(mail_user.name, "INBOX", b"Subject: once\r\n\r\nbody\r\n")
    path = config_file(account_toml(dovecot, mail_user))
    result = cli(path, "daemon", "--once", "acct")
    assert result.returncode == 0, result.stderr
    assert "run finished account=acct status=ok" in result.stderr
    assert [r["status"] for r in runs(tmp_path / "archive", "acct")] == ["ok"]
    bad = config_file(account_toml(dovecot, mail_user, password="not-the-password"))
    result = cli(bad, "daemon", "--once", "acct")
    assert result.returncode == 1 and "status=failed" in result.stderr
    assert "not-the-password" not in result.stderr
    assert cli(bad, "daemon", "--once", "nobody").returncode == 2
