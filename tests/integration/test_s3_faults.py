"""Faults of an S3 store, each leaving nothing lost and the next run completing (a real SeaweedFS, a real Dovecot).

503s and slow answers (a scripted proxy in front of the server), the server
killed mid-upload and restarted, a missing bucket, wrong credentials, and
``archiver backup`` SIGKILLed at random points of its uploads.  After every
fault ``verify`` is clean: the catalog never names a blob the bucket lacks.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from archiver.backup import run_backup
from archiver.config import Config
from archiver.devtools.seaweed import BUCKET, SeaweedSandbox
from archiver.store import s3_client
from archiver.verify import verify_archive
from tests.fixtures.archives import OpenArchive, archive_at, archived_hashes
from tests.fixtures.cli import assert_one_clear_line
from tests.fixtures.config import parse_config
from tests.fixtures.mail_server import MailUser, account_toml, fill_mailbox, server_hashes
from tests.fixtures.s3_proxy import Answer, Delay, S3Proxy
from tests.fixtures.seaweed import fresh_prefix, object_keys, private_seaweed, s3_archive_toml

pytestmark = [pytest.mark.integration, pytest.mark.s3]


@pytest.fixture
def proxy(seaweed: SeaweedSandbox) -> Iterator[Callable[..., S3Proxy]]:
    started: list[S3Proxy] = []

    def start(script: Callable[[str, str, int], Answer | Delay | None]) -> S3Proxy:
        started.append(S3Proxy(seaweed.endpoint, script).start())
        return started[-1]

    yield start
    for each in started:
        each.stop()


def _assert_complete(config: Config, open_archive: OpenArchive, dovecot, user: MailUser, folders) -> None:  # type: ignore[no-untyped-def]
    """The archive holds exactly the server's messages, and every one of them is sound in the bucket."""
    with open_archive(config) as archive:
        assert archived_hashes(archive.catalog) == server_hashes(dovecot, user, sorted(folders))
        report = verify_archive(archive)
        assert report.ok, report.problems


def test_503s_throttling_and_slow_answers_are_retried_and_nothing_is_lost(
    dovecot, seaweed, mail_user, config_file, open_archive, proxy
) -> None:
    folders = fill_mailbox(dovecot, mail_user, 120, seed=41)

    def struggling(method: str, path: str, number: int) -> Answer | Delay | None:
        if method == "PUT" and number % 5 == 0:
            return Answer(503, "SlowDown" if number % 2 else "ServiceUnavailable")
        if number % 11 == 0:
            return Delay(2.5)  # past store_timeout: the client gives up on it and tries again
        return None

    server = proxy(struggling)
    extra = s3_archive_toml(seaweed, fresh_prefix("slow"), endpoint=server.endpoint) + "store_timeout = 1\n"
    config = parse_config(config_file(account_toml(dovecot, mail_user), extra + "batch_messages = 20\n"))
    with open_archive(config) as archive:
        report = run_backup(config, config.accounts[0], archive=archive)
        assert report.ok, report.problems
    assert server.faults["Answer"] >= 5 and server.faults["Delay"] >= 3
    _assert_complete(config, open_archive, dovecot, mail_user, folders)


def test_a_store_failing_for_good_stops_the_run_in_one_line_and_the_next_run_completes(
    dovecot, seaweed, mail_user, config_file, open_archive, proxy, monkeypatch
) -> None:
    monkeypatch.setattr(s3_client, "RETRY_ATTEMPTS", 2)  # the same path as 8 tries, without a minute of back-off
    folders = fill_mailbox(dovecot, mail_user, 80, seed=43)
    broken = {"from": 10**9}

    def failing(method: str, path: str, number: int) -> Answer | None:
        if method == "PUT" and "/blobs/" in path and number >= broken["from"]:
            return Answer(500, "InternalError")
        return None

    server = proxy(failing)
    prefix = fresh_prefix("down")
    extra = s3_archive_toml(seaweed, prefix, endpoint=server.endpoint) + "batch_messages = 10\n"
    config = parse_config(config_file(account_toml(dovecot, mail_user), extra))
    broken["from"] = 12  # the first batches go up, then every blob upload fails
    with open_archive(config) as archive:
        report = run_backup(config, config.accounts[0], archive=archive)
        assert not report.ok and report.archive_failed
        assert any("InternalError" in line for line in report.problems), report.problems
        assert all("\n" not in line and "Traceback" not in line for line in report.problems)
        assert verify_archive(archive).ok  # what the catalog holds is in the bucket, whole
        held = len(archived_hashes(archive.catalog))
    assert 0 < held < 80
    broken["from"] = 10**9
    with open_archive(config) as archive:
        assert run_backup(config, config.accounts[0], archive=archive).ok
        runs = archive.catalog.db.execute("SELECT messages_new FROM runs ORDER BY id").fetchall()
    assert sum(row["messages_new"] for row in runs) == 80  # nothing the catalog held was fetched again
    _assert_complete(config, open_archive, dovecot, mail_user, folders)


@pytest.mark.slow
def test_the_server_killed_mid_upload_and_restarted(dovecot, mail_user, tmp_path, config_file, cli) -> None:
    server = private_seaweed(tmp_path / "seaweed")
    try:
        folders = fill_mailbox(dovecot, mail_user, 400, seed=47)
        prefix = fresh_prefix("killed")
        path = config_file(account_toml(dovecot, mail_user), s3_archive_toml(server, prefix) + "batch_messages = 10\n")
        backup = subprocess.Popen(
            cli.command(path, "backup"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 120
        while len(object_keys(server, f"{prefix}blobs/")) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert backup.poll() is None, "the backup ended before the server could be killed mid-upload"
        server.kill()
        time.sleep(2)
        server.start()  # same ports, same data
        _, stderr = backup.communicate(timeout=300)
        assert "Traceback" not in stderr  # it rode out the outage, or said in one line why it stopped
        again = cli(path, "backup")
        assert again.returncode == 0, again.stderr
        with archive_at(parse_config(path)) as archive:
            assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, sorted(folders))
            report = verify_archive(archive)
            assert report.ok, report.problems
    finally:
        server.stop()


def test_a_missing_bucket_is_one_line_and_creates_nothing(dovecot, seaweed, mail_user, config_file, cli) -> None:
    extra = s3_archive_toml(seaweed, "x/", bucket="no-such-bucket")
    path = config_file(account_toml(dovecot, mail_user), extra)
    for command in ("backup", "verify"):
        result = cli(path, command, timeout=120)
        assert_one_clear_line(result, "bucket no-such-bucket does not exist", seaweed.endpoint)
    client = seaweed.client()
    try:
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == [BUCKET]
    finally:
        client.close()
    status = cli(path, "status")  # the catalog is local: status still answers while the store cannot
    assert status.returncode == 0, status.stderr


def test_wrong_credentials_are_one_line_without_the_secret(dovecot, seaweed, mail_user, config_file, cli) -> None:
    secret = "Wr0ng-S3cret-Zq7xx"
    path = config_file(account_toml(dovecot, mail_user), s3_archive_toml(seaweed, fresh_prefix("creds"), secret=secret))
    for command in ("backup", "verify", "search"):
        result = cli(path, command, *(["anything"] if command == "search" else []), timeout=120)
        text = assert_one_clear_line(result, "refused archiver's credentials", "secret_access_key")
        assert secret not in text and secret not in result.stdout
    result = cli(path, "--debug", "backup", timeout=120)
    assert secret not in result.stderr + result.stdout  # not even in a traceback or a debug log


@pytest.mark.slow
def test_sigkills_at_random_points_of_the_uploads_then_a_completing_run(
    dovecot, seaweed, mail_user, config_file, cli, open_archive
) -> None:
    """Kills land while blobs are in flight (the bucket ahead of the catalog) or between commits; after each
    the catalog names only blobs the bucket holds whole; a last run completes without fetching anything twice."""
    rng = random.Random(15)
    total = 400
    folders = fill_mailbox(dovecot, mail_user, total, seed=53)
    prefix = fresh_prefix("sigkill")
    path = config_file(account_toml(dovecot, mail_user), s3_archive_toml(seaweed, prefix) + "batch_messages = 8\n")
    config = parse_config(path)
    progress = [0]
    ahead = 0  # kills that caught uploaded blobs the catalog did not hold yet
    killed_mid_run = 0
    for _trial in range(8):
        process = subprocess.Popen(cli.command(path, "backup"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = progress[-1] + rng.randint(1, max(1, (total - progress[-1]) // 10))
        deadline = time.monotonic() + 60
        while _uploaded(seaweed, prefix) < target and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.05))
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        ahead += _uploaded(seaweed, prefix) > _committed(config)
        with open_archive(config) as archive:
            report = verify_archive(archive)
            assert report.ok, report.problems
            progress.append(len(archived_hashes(archive.catalog)))
        killed_mid_run += process.returncode == -signal.SIGKILL and progress[-1] < total
    assert progress == sorted(progress), progress  # never loses committed work
    assert killed_mid_run >= 4, progress
    assert ahead >= 1  # at least one kill landed between an upload and its catalog commit
    result = cli(path, "backup")
    assert result.returncode == 0, result.stderr
    with open_archive(config) as archive:
        runs = archive.catalog.db.execute("SELECT messages_new FROM runs ORDER BY id").fetchall()
        assert list(archive.store.temp_dir.iterdir()) == []
    assert sum(row["messages_new"] for row in runs) == total  # nothing committed was downloaded again
    _assert_complete(config, open_archive, dovecot, mail_user, folders)


def _uploaded(server: SeaweedSandbox, prefix: str) -> int:
    return len([key for key in object_keys(server, f"{prefix}blobs/") if "/dict/" not in key and "LAYOUT" not in key])


def _committed(config: Config) -> int:
    catalog = Path(config.archive.path) / "catalog.sqlite3"
    if not catalog.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT count(DISTINCT blob_id) FROM placements").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
