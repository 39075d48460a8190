"""``archiver backup`` returns once the mail is durable; a background worker makes it searchable; the lag is told.

What a user sees: the command returns with the mail in the catalog and says a worker indexes it; ``status``,
``search`` and ``/metrics`` say how far the index lags until the worker is done; ``--wait-index`` returns only
once the mail is searchable; a worker killed half-way loses nothing (the next one resumes from the bookmark);
a second worker started while one runs does nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archiver import index
from archiver.backup.background import worker_lock
from archiver.index.lag import process_alive, read_activity
from tests.fixtures.config import parse_config
from tests.fixtures.mail_server import account_toml, fill_mailbox
from tests.fixtures.workers import session_workers

pytestmark = pytest.mark.integration


def _status(cli, path: Path) -> dict:
    done = cli(path, "status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _wait_gone(pid: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        assert time.monotonic() < deadline, f"index worker {pid} still running after {timeout} s"
        time.sleep(0.05)


def _documents(open_archive, path: Path) -> int:
    with open_archive(parse_config(path), readonly=True) as archive:
        return index.index_status(archive)["documents"]


def test_backup_returns_durable_then_the_worker_makes_it_searchable(dovecot, mail_user, config_file, cli) -> None:
    fill_mailbox(dovecot, mail_user, 40, seed=61, duplicate_ratio=0.0)
    path = config_file(account_toml(dovecot, mail_user))
    first = cli(path, "backup", "--json")
    assert first.returncode == 0, first.stderr
    (report,) = json.loads(first.stdout)
    assert report["index_update"] == "background" and report["index_pending"] == report["messages_new"] == 40
    pid = report["index_worker_pid"]
    # Durable on return: the catalog holds every message, whatever the worker has done yet.
    assert _status(cli, path)["accounts"][0]["messages"] == 40
    _wait_gone(pid)
    status = _status(cli, path)["index_lag"]
    assert status["messages_behind"] == 0 and not status["updating"] and status["last_error"] is None
    found = cli(path, "search", "--json", "--limit", "100", "date:2000..2100")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["total"] == 40
    assert "incomplete" not in found.stderr
    activity = read_activity(parse_config(path).archive.path)
    assert activity is not None and activity.pid == pid and activity.role == "worker" and activity.error is None

    # A person is told in one line, and a no-change run starts no worker at all.
    fill_mailbox(dovecot, mail_user, 3, seed=62, duplicate_ratio=0.0)
    told = cli(path, "backup")
    assert told.returncode == 0, told.stderr
    assert "search index: 3 new message(s) being indexed in the background (pid " in told.stdout
    again = cli(path, "backup", "--wait-index", "--json")  # waits for that worker, then has nothing left
    (report,) = json.loads(again.stdout)
    assert again.returncode == 0 and report["index_error"] is None, again.stderr
    nothing = cli(path, "backup", "--json")
    assert json.loads(nothing.stdout)[0]["index_worker_pid"] is None
    assert session_workers() == []


def test_lag_is_told_by_status_search_and_metrics_until_indexed(dovecot, mail_user, config_file, cli) -> None:
    fill_mailbox(dovecot, mail_user, 12, seed=63)
    path = config_file(account_toml(dovecot, mail_user))
    assert cli(path, "backup", "--wait-index").returncode == 0
    fill_mailbox(dovecot, mail_user, 5, seed=64, duplicate_ratio=0.0)
    assert cli(path, "backup", "--no-index").returncode == 0  # archived, not indexed: the index lags 5

    lag = _status(cli, path)["index_lag"]
    assert lag["messages_behind"] == 5 and lag["oldest_unindexed_seconds"] >= 0 and not lag["updating"]
    text = cli(path, "status")
    assert "search index: 5 message(s) not searchable yet" in text.stdout, text.stdout
    found = cli(path, "search", "date:2000..2100")
    assert found.returncode == 0, found.stderr
    notes = [line for line in found.stderr.splitlines() if "incomplete" in line]
    assert len(notes) == 1 and "5 message(s) not searchable yet" in notes[0], found.stderr

    config = parse_config(path)
    from archiver.catalog import Catalog
    from archiver.daemon.metrics import render_metrics

    with Catalog.open(config.archive.path, readonly=True) as catalog:
        metrics = render_metrics(config, catalog).decode()
    assert "archiver_index_lag_messages 5.0" in metrics and "archiver_index_worker_running 0.0" in metrics

    caught_up = cli(path, "backup", "--wait-index", "--json")  # nothing new to fetch, the index catches up
    assert caught_up.returncode == 0, caught_up.stderr
    assert _status(cli, path)["index_lag"]["messages_behind"] == 0
    with Catalog.open(config.archive.path, readonly=True) as catalog:
        assert "archiver_index_lag_messages 0.0" in render_metrics(config, catalog).decode()


@pytest.mark.slow
def test_a_worker_killed_half_way_loses_nothing(dovecot, mail_user, config_file, cli, open_archive) -> None:
    fill_mailbox(dovecot, mail_user, 1200, seed=65, duplicate_ratio=0.0)
    path = config_file(account_toml(dovecot, mail_user))
    first = cli(path, "backup", "--json")
    assert first.returncode == 0, first.stderr
    pid = json.loads(first.stdout)[0]["index_worker_pid"]
    root = parse_config(path).archive.path
    deadline = time.monotonic() + 120
    while (activity := read_activity(root)) is None or activity.pid != pid or activity.done == 0:
        assert process_alive(pid), "the worker finished before it could be killed half-way"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    _wait_gone(pid)

    status = _status(cli, path)["index_lag"]
    assert status["messages_behind"] > 0 and not status["updating"]
    assert "stopped before it finished" in cli(path, "status").stdout
    resumed = cli(path, "backup", "--wait-index", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert _status(cli, path)["index_lag"]["messages_behind"] == 0
    assert _documents(open_archive, path) == 1200  # each message once: nothing lost, nothing twice
    found = cli(path, "search", "--json", "--limit", "1", "date:2000..2100")
    assert json.loads(found.stdout)["total"] == 1200


def test_a_second_worker_does_nothing_while_one_runs(dovecot, mail_user, config_file, cli) -> None:
    fill_mailbox(dovecot, mail_user, 8, seed=66)
    path = config_file(account_toml(dovecot, mail_user))
    assert cli(path, "backup", "--no-index").returncode == 0
    root = parse_config(path).archive.path
    command = [sys.executable, "-m", "archiver.backup.background", "--config", str(path), "--run-id", "1"]
    with worker_lock(root) as held:  # as a running worker holds it
        assert held
        second = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stderr
        assert read_activity(root) is None  # it indexed nothing, wrote nothing
    # The lock let go, the same command catches the index up.
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _status(cli, path)["index_lag"]["messages_behind"] == 0


def test_the_config_can_make_backup_wait_for_the_index(dovecot, mail_user, config_file, cli) -> None:
    fill_mailbox(dovecot, mail_user, 6, seed=67, duplicate_ratio=0.0)
    path = config_file(account_toml(dovecot, mail_user), extra='[index]\nupdate = "wait"\n')
    waited = cli(path, "backup", "--json")
    (report,) = json.loads(waited.stdout)
    assert waited.returncode == 0 and report["index_update"] == "wait" and report["index_seconds"] > 0, waited.stderr
    assert report["index_worker_pid"] is None and _status(cli, path)["index_lag"]["messages_behind"] == 0
    fill_mailbox(dovecot, mail_user, 2, seed=68, duplicate_ratio=0.0)
    background = cli(path, "backup", "--background-index", "--json")  # the option overrides the config
    (report,) = json.loads(background.stdout)
    assert report["index_update"] == "background" and report["index_pending"] == 2, background.stderr
    _wait_gone(report["index_worker_pid"])


def test_the_worker_opens_an_encrypted_archive_as_the_command_did(dovecot, mail_user, config_file, cli, tmp_path):
    """The worker reads the command's config: the key of an encrypted archive, then compacts what it wrote."""
    fill_mailbox(dovecot, mail_user, 12, seed=69, duplicate_ratio=0.0)
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("a passphrase long enough for the test\n")
    passphrase.chmod(0o600)
    path = config_file(
        account_toml(dovecot, mail_user), archive_extra=f'encryption = true\npassphrase_file = "{passphrase}"\n'
    )
    assert cli(path, "key", "init").returncode == 0
    first = cli(path, "backup", "--json")
    assert first.returncode == 0, first.stderr
    _wait_gone(json.loads(first.stdout)[0]["index_worker_pid"])
    assert _status(cli, path)["index_lag"]["messages_behind"] == 0
    found = cli(path, "search", "--json", "date:2000..2100")
    assert json.loads(found.stdout)["total"] == 12, found.stderr


def test_the_worker_compacts_so_segments_do_not_pile_up(dovecot, mail_user, config_file, cli, open_archive):
    """Each update writes a segment and never merges; the worker merges them afterwards (by size tiers)."""
    path = config_file(account_toml(dovecot, mail_user))
    for round_ in range(8):
        fill_mailbox(dovecot, mail_user, 3, seed=70 + round_, duplicate_ratio=0.0)
        done = cli(path, "backup", "--json")
        assert done.returncode == 0, done.stderr
        _wait_gone(json.loads(done.stdout)[0]["index_worker_pid"])
    with open_archive(parse_config(path), readonly=True) as archive:
        status = index.index_status(archive)
    assert status["documents"] == 24 and status["segments"] <= 5, status
