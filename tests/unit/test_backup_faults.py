"""The pure parts of fault handling (archiver.backup.faults) and its config keys; servers: tests/integration."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from archiver.backup.faults import (
    PoisonedMessages,
    RunClock,
    RunTimeLimit,
    backoff_delays,
    format_duration,
    is_dropped,
    reconnect,
)
from archiver.config import config_from_toml_text
from archiver.errors import AuthError, ConfigError, ConnectError, StoreError, TLSError

WHERE = "acct: mail.example.org:993"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_run_clock_counts_down_and_raises_once_expired() -> None:
    fake = FakeClock()
    clock = RunClock(60, clock=fake)
    assert not clock.expired() and clock.remaining() == 60
    clock.check()
    fake.now += 59.5
    assert not clock.expired()
    fake.now += 0.5
    assert clock.expired() and clock.remaining() == 0
    with pytest.raises(RunTimeLimit):
        clock.check()
    assert clock.problem("acct") == "acct: stopped after the run time limit (1m); the next run continues"


@pytest.mark.parametrize("limit", [None, 0])
def test_run_clock_without_limit_never_expires(limit: int | None) -> None:
    fake = FakeClock()
    clock = RunClock(limit, clock=fake)
    fake.now += 10**9
    assert not clock.expired() and clock.remaining() is None
    clock.check()


@pytest.mark.parametrize(
    ("seconds", "text"), [(45, "45s"), (5400, "1h30m"), (86400, "1d"), (0, "0s"), (90061, "1d1h1m1s")]
)
def test_format_duration_uses_the_config_spelling(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


def test_backoff_doubles() -> None:
    assert backoff_delays(4) == [1, 2, 4, 8]
    assert backoff_delays(3, first=0.5) == [0.5, 1, 2]
    assert backoff_delays(0) == []


def _flaky(failures: list[Exception]):
    calls = []

    def connect() -> None:
        calls.append(1)
        if failures:
            raise failures.pop(0)

    return connect, calls


def test_reconnect_waits_longer_each_time_and_logs_every_attempt(caplog: pytest.LogCaptureFixture) -> None:
    refused = ConnectError(f"{WHERE}: connection refused (is the server running and the port right?)")
    connect, calls = _flaky([refused, refused])
    slept: list[float] = []
    cause = ConnectError(f"{WHERE}: the connection was closed by the server (EOFError)")
    with caplog.at_level(logging.WARNING, logger="archiver.backup.runner"):
        reconnect(connect, WHERE, cause, 5, RunClock(None), "folder 'INBOX'", sleep=slept.append)
    assert slept == [1, 2, 4] and len(calls) == 3
    attempts = [r.getMessage() for r in caplog.records if "reconnecting in" in r.getMessage()]
    assert len(attempts) == 3 and all(r.levelno == logging.WARNING for r in caplog.records)
    assert attempts[0] == (
        f"{WHERE}: folder 'INBOX': connection lost (the connection was closed by the server (EOFError)); "
        "reconnecting in 1s (attempt 1 of 5)"
    )
    assert "attempt 3 of 5" in attempts[2] and "connection refused" in attempts[2]


def test_reconnect_gives_up_with_one_clear_line() -> None:
    refused = ConnectError(f"{WHERE}: connection refused (is the server running and the port right?)")
    connect, _calls = _flaky([refused] * 3)
    cause = ConnectError(f"{WHERE}: timed out waiting for the server")
    with pytest.raises(ConnectError) as error:
        reconnect(connect, WHERE, cause, 3, RunClock(None), "folder 'INBOX'", sleep=lambda _s: None)
    message = str(error.value)
    assert "\n" not in message
    assert message == (
        f"{WHERE}: folder 'INBOX': the connection was lost (timed out waiting for the server) and 3 reconnect "
        "attempt(s) failed (last: connection refused (is the server running and the port right?)); "
        "the next run continues from the last committed batch"
    )


def test_reconnect_off() -> None:
    connect, calls = _flaky([])
    with pytest.raises(ConnectError, match=r"reconnecting is off \(reconnect_attempts = 0\)"):
        reconnect(connect, WHERE, ConnectError(f"{WHERE}: x"), 0, RunClock(None), sleep=lambda _s: None)
    assert calls == []


def test_reconnect_does_not_retry_a_refused_login() -> None:
    connect, calls = _flaky([AuthError(f"{WHERE}: login refused for user 'a' (bad)")])
    with pytest.raises(AuthError):
        reconnect(connect, WHERE, ConnectError(f"{WHERE}: x"), 5, RunClock(None), sleep=lambda _s: None)
    assert len(calls) == 1


def test_reconnect_stops_when_the_run_time_would_end_during_the_wait() -> None:
    fake = FakeClock()
    clock = RunClock(10, clock=fake)
    fake.now += 9.5  # half a second left, the first wait is 1 s
    connect, calls = _flaky([])
    with pytest.raises(RunTimeLimit):
        reconnect(connect, WHERE, ConnectError(f"{WHERE}: x"), 5, clock, sleep=lambda _s: None)
    assert calls == []


def test_what_counts_as_a_dropped_connection() -> None:
    assert is_dropped(ConnectError("x")) and is_dropped(TLSError("x"))
    assert not is_dropped(AuthError("x")) and not is_dropped(StoreError("disk full"))


def test_a_batch_that_drops_once_is_just_fetched_again() -> None:
    poison = PoisonedMessages()
    poison.fetching([1, 2, 3])
    assert poison.dropped() is False
    assert list(poison.split([[1, 2, 3], [4, 5]])) == [[1, 2, 3], [4, 5]]
    poison.fetching([1, 2, 3])
    poison.fetched()  # the server is back: this time it went through
    assert poison.dropped() is False  # a drop outside a fetch (say during SEARCH) blames no message
    assert poison.suspects == set() and poison.skipped == set()


def test_a_message_that_drops_the_connection_every_time_is_isolated_and_skipped() -> None:
    poison = PoisonedMessages()
    for _ in range(2):
        poison.fetching([1, 2, 3])
        assert poison.dropped() is False
    assert poison.suspects == {1, 2, 3}
    assert list(poison.split([[1, 2, 3], [4, 5]])) == [[1], [2], [3], [4, 5]]
    poison.fetching([1])
    poison.fetched()
    poison.fetching([2])
    assert poison.dropped() is True  # isolated: progress, UID 2 is not asked for again this run
    assert poison.skipped == {2}


def _archive_table(extra: str) -> str:
    return f'[archive]\npath = "/srv/archive"\n{extra}\n'


def _load(text: str):
    return config_from_toml_text(text, Path("/etc/archiver.toml"))


def test_config_run_time_and_reconnect_defaults() -> None:
    archive = _load(_archive_table("")).archive
    assert archive.max_run_time == 24 * 3600 and archive.reconnect_attempts == 5


@pytest.mark.parametrize(("value", "seconds"), [('"6h"', 6 * 3600), ('"1h30m"', 5400), ("900", 900), ("0", None)])
def test_config_max_run_time(value: str, seconds: int | None) -> None:
    assert _load(_archive_table(f"max_run_time = {value}")).archive.max_run_time == seconds


@pytest.mark.parametrize("line", ['max_run_time = "soon"', "max_run_time = -5", "reconnect_attempts = -1"])
def test_config_rejects_bad_fault_settings_naming_the_key(line: str) -> None:
    with pytest.raises(ConfigError, match=f"archive.{line.split()[0]}"):
        _load(_archive_table(line))


def test_the_header_look_is_left_out_after_it_dropped_the_connection_twice() -> None:
    poison = PoisonedMessages()
    poison.fetching_stubs()
    assert poison.dropped() is False and not poison.skip_stubs  # once: a restart, say; try it again
    poison.fetching_stubs()
    poison.fetched()
    poison.fetching_stubs()
    assert poison.dropped() is False and poison.skip_stubs
    assert poison.suspects == set()  # no message is blamed for a drop in the header look
