"""A backup SIGKILLed at several points leaves a consistent archive; the next run completes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict

import pytest

from archiver.archive import Archive
from archiver.sample_mail import generate_mailbox
from archiver.verify import verify_archive
from tests.integration.helpers import account_toml, archived_hashes, load, run_cli, server_hashes, write_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sigkill_at_several_points_then_resume(dovecot, mail_user, tmp_path):
    by_folder: dict[str, list] = defaultdict(list)
    for sample in generate_mailbox(900, seed=11):
        by_folder[sample.folder].append((sample.raw, sample.flags, sample.internaldate))
    for folder, items in by_folder.items():
        dovecot.append_many(mail_user.name, folder, items)
    path = write_config(tmp_path, account_toml(dovecot, mail_user), "batch_messages = 25")
    config = load(path)
    command = [sys.executable, "-m", "archiver", "--config", str(path), "backup"]

    progress = []
    for delay in (0.4, 0.8, 1.2, 1.6, 2.2):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        with Archive(config.archive) as archive:
            report = verify_archive(archive)
            assert report.ok, report.problems  # consistent at every kill point
            progress.append(len(archived_hashes(archive.catalog)))
    assert progress == sorted(progress)  # never loses committed work
    assert progress[0] < 900  # at least the first kill landed mid-run

    result = run_cli(path, "backup")
    assert result.returncode == 0, result.stderr
    with Archive(config.archive) as archive:
        assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, sorted(by_folder))
        report = verify_archive(archive)
        assert report.ok
        runs = archive.catalog.db.execute("SELECT status FROM runs ORDER BY id").fetchall()
        assert runs[-1]["status"] == "ok"
        assert sum(r["status"] == "interrupted" for r in runs) >= 1
        assert list(archive.store.temp_dir.iterdir()) == []
