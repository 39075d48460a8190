"""A backup SIGKILLed at several points leaves a consistent archive; the next run completes it."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time

import pytest

from archiver.verify import verify_archive
from tests.fixtures.archives import archived_hashes
from tests.fixtures.config import parse_config
from tests.fixtures.mail_server import account_toml, fill_mailbox, server_hashes

# The five-kill trial stays in the default run (CI proves "killed at any instant, consistent" on every
# change); the twenty-kill trial is the slow one.
pytestmark = pytest.mark.integration


def test_sigkill_at_several_points_then_resume(dovecot, mail_user, tmp_path, config_file, cli, open_archive):
    by_folder = fill_mailbox(dovecot, mail_user, 900, seed=11)
    path = config_file(account_toml(dovecot, mail_user), "batch_messages = 25")
    config = parse_config(path)
    command = cli.command(path, "backup", "--wait-index")  # the kills land in the index update too

    progress = []
    for delay in (0.4, 0.8, 1.2, 1.6, 2.2):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        with open_archive(config) as archive:
            report = verify_archive(archive)
            assert report.ok, report.problems  # consistent at every kill point
            progress.append(len(archived_hashes(archive.catalog)))
    assert progress == sorted(progress)  # never loses committed work
    assert progress[0] < 900  # at least the first kill landed mid-run

    result = cli(path, "backup")
    assert result.returncode == 0, result.stderr
    with open_archive(config) as archive:
        assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, sorted(by_folder))
        report = verify_archive(archive)
        assert report.ok
        runs = archive.catalog.db.execute("SELECT status FROM runs ORDER BY id").fetchall()
        assert runs[-1]["status"] == "ok"
        assert sum(r["status"] == "interrupted" for r in runs) >= 1
        assert list(archive.store.temp_dir.iterdir()) == []


@pytest.mark.slow
def test_twenty_sigkills_at_random_points_then_a_completing_run(
    dovecot, mail_user, tmp_path, config_file, cli, open_archive
):
    """20 runs SIGKILLed at seeded random instants (start-up, listing, fetching, storing, committing,
    indexing): after each kill the archive verifies clean; the committed count never goes back; a
    final run completes it, equal to the server, with every message recorded exactly once."""
    rng = random.Random(20261123)
    by_folder = fill_mailbox(dovecot, mail_user, 600, seed=29)
    path = config_file(account_toml(dovecot, mail_user), "batch_messages = 4")
    config = parse_config(path)
    command = cli.command(path, "backup", "--wait-index")  # the kills land in the index update too

    progress = [0]
    killed_mid_run = 0
    for _trial in range(20):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The kill points follow the work, not the clock, so they land mid-run on any machine: a quarter
        # of the trials die early (start-up, login, listing), the others once a random share of what is
        # left has been committed (fetching, storing, committing, or between batches).
        if rng.random() < 0.25:  # early: by the clock, but never past the first new commit (a fast machine
            until = time.monotonic() + rng.uniform(0.0, 0.6)  # could otherwise finish the whole backlog)
            while time.monotonic() < until and _committed(config) <= progress[-1] and process.poll() is None:
                time.sleep(0.005)
        else:
            target = progress[-1] + rng.randint(1, max(1, (600 - progress[-1]) // 5))
            deadline = time.monotonic() + 30
            while _committed(config) < target and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        with open_archive(config) as archive:
            report = verify_archive(archive)
            assert report.ok, report.problems  # consistent at every kill point
            progress.append(len(archived_hashes(archive.catalog)))
        killed_mid_run += process.returncode == -signal.SIGKILL and progress[-1] < 600
    assert progress == sorted(progress)  # never loses committed work
    assert killed_mid_run >= 5, progress  # the kills really landed while there was work left

    result = cli(path, "backup")
    assert result.returncode == 0, result.stderr
    with open_archive(config) as archive:
        assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, sorted(by_folder))
        assert verify_archive(archive).ok
        runs = archive.catalog.db.execute("SELECT status, messages_new FROM runs ORDER BY id").fetchall()
        assert list(archive.store.temp_dir.iterdir()) == []
    assert runs[-1]["status"] == "ok"
    assert sum(r["messages_new"] for r in runs) == 600  # nothing committed was downloaded again


def _committed(config) -> int:
    """Placements the catalog holds right now, read without disturbing the writer (WAL readers never block)."""
    catalog = config.archive.path / "catalog.sqlite3"
    if not catalog.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT count(*) FROM placements").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is being created
        return 0
