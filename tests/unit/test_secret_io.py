"""Secrets read from operator-chosen files and commands: capped, never blocking, never echoed."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.config import PasswordSource
from archiver.errors import SecretError
from archiver.secret_io import SECRET_MAX_BYTES, read_secret_file, run_secret_command
from tests.fixtures.webdata import web_config
from web import create_app


@pytest.fixture
def deadline() -> Iterator[None]:
    """Fail instead of hanging the suite when a read blocks (the FIFO bug this file guards against)."""

    def expired(*_: object) -> None:
        raise AssertionError("blocked for 10 s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "secret.fifo"
    os.mkfifo(path, 0o600)
    return path


def test_file_of_exactly_the_cap_is_read_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_bytes(b"p" * SECRET_MAX_BYTES)
    assert read_secret_file(path, "where") == b"p" * SECRET_MAX_BYTES
    path.write_bytes(b"p" * (SECRET_MAX_BYTES + 1))
    with pytest.raises(SecretError, match=r"^where: .*pw is larger than 64 KiB") as caught:
        read_secret_file(path, "where")
    assert "ppp" not in str(caught.value)


def test_fifo_password_file_is_refused_without_waiting_for_a_writer(fifo: Path, deadline: None) -> None:
    source = PasswordSource("file", file=fifo, account="work", key="accounts[0].password_file")
    with pytest.raises(SecretError, match=r"accounts\[0\]\.password_file: .* is a named pipe \(FIFO\)"):
        source.resolve()


def test_missing_password_file_names_the_key(tmp_path: Path) -> None:
    source = PasswordSource("file", file=tmp_path / "nope", account="work", key="accounts[0].password_file")
    with pytest.raises(SecretError, match=r"accounts\[0\]\.password_file: cannot read .*nope: No such file"):
        source.resolve()


def test_failing_command_with_megabytes_of_stderr_shows_its_last_line_only() -> None:
    script = "yes noise | head -n 800000 >&2; echo 'gpg: decryption failed' >&2; exit 2"
    with pytest.raises(SecretError, match=r"^where: failed with exit code 2: gpg: decryption failed$"):
        run_secret_command(["sh", "-c", script], "where", timeout=30)


def test_command_that_closes_its_output_but_lingers_is_stopped_at_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(SecretError, match=r"^where: did not finish within 1 s$"):
        run_secret_command(["sh", "-c", "echo hunter2; exec >&- 2>&-; sleep 60"], "where", timeout=1)
    assert time.monotonic() - started < 5


def test_command_output_is_never_in_an_error() -> None:
    with pytest.raises(SecretError) as caught:
        run_secret_command(["sh", "-c", "echo hunter2; exit 1"], "where", timeout=10)
    assert "hunter2" not in str(caught.value)


def test_web_secret_key_file_that_is_a_fifo_is_one_clear_error(tmp_path: Path, fifo: Path, deadline: None) -> None:
    config = web_config(tmp_path, f'[web]\nsecret_key_file = "{fifo}"\n')
    with pytest.raises(SecretError, match=r"\[web\] secret_key_file: .* is a named pipe"):
        create_app(config, testing=True)


def test_metrics_token_file_that_is_a_fifo_answers_503(tmp_path: Path, fifo: Path, deadline: None) -> None:
    config = web_config(tmp_path, f'[metrics]\ntoken_file = "{fifo}"\n')
    app = create_app(config, testing=True)
    try:
        assert app.test_client().get("/metrics").status_code == 503
    finally:
        app.extensions["archiver_archive"].close()
