"""The scheduler with a real APScheduler and a stand-in runner (the Dovecot runs are in tests/integration).

What is checked: a run never overlaps itself, the pool bounds concurrent
accounts, a long run is not started twice, missed windows give one catch-up
run (after a pause and after a restart), and a persisted future run survives a
restart unchanged.  Waits are bounded loops on conditions, never assertions on
durations.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from archiver.catalog import Catalog
from archiver.config import Config, config_from_toml_text
from archiver.daemon.schedule import RunOutcome, load_states, save_next_run
from archiver.daemon.scheduler import BackupScheduler
from archiver.times import utc_now


def make_config(tmp_path: Path, schedules: dict[str, str], scheduler: str = "") -> tuple[Config, str]:
    accounts = "".join(
        f'[[accounts]]\nname = "{name}"\nprotocol = "local"\nschedule = "{spec}"\n' for name, spec in schedules.items()
    )
    text = f'[archive]\npath = "{tmp_path / "archive"}"\n[scheduler]\njitter = 0\n{scheduler}\n{accounts}'
    return config_from_toml_text(text, tmp_path / "archiver.toml"), text


class Recorder:
    """A runner that records (account, start, end) and can hold runs until released."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.spans: list[tuple[str, float, float]] = []
        self.active: dict[str, int] = {}
        self.max_active = 0
        self.release = threading.Event()
        self.hold = False
        self.lock = threading.Lock()

    def __call__(self, text: str, config: Config, name: str) -> RunOutcome:
        start = time.monotonic()
        with self.lock:
            self.active[name] = self.active.get(name, 0) + 1
            self.max_active = max(self.max_active, sum(self.active.values()))
            assert self.active[name] == 1, f"{name} overlaps itself"
        if self.hold:
            self.release.wait(30)
        time.sleep(self.seconds)
        with self.lock:
            self.active[name] -= 1
            self.spans.append((name, start, time.monotonic()))
        return RunOutcome(name, "ok")

    def count(self, name: str) -> int:
        with self.lock:
            return sum(1 for n, *_ in self.spans if n == name)


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


@pytest.fixture
def started() -> Iterator[list[BackupScheduler]]:
    schedulers: list[BackupScheduler] = []
    yield schedulers
    for scheduler in schedulers:
        scheduler.stop()


@pytest.mark.slow
def test_runs_on_schedule_without_overlap_and_bounded(tmp_path: Path, started: list[BackupScheduler]) -> None:
    config, text = make_config(tmp_path, {"a": "every 1s", "b": "every 1s", "c": "every 1s"}, "max_concurrent = 2\n")
    runner = Recorder(seconds=1.3)  # longer than the interval: the next fire time finds the run still going
    scheduler = BackupScheduler(config, text, runner)
    started.append(scheduler)
    scheduler.start()
    wait_for(lambda: all(runner.count(n) >= 2 for n in "abc"), timeout=60)
    scheduler.stop()
    assert runner.max_active <= 2
    for name in "abc":
        spans = sorted((s, e) for n, s, e in runner.spans if n == name)
        assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans)), name


@pytest.mark.slow
def test_long_run_is_not_started_twice(tmp_path: Path, started: list[BackupScheduler]) -> None:
    config, text = make_config(tmp_path, {"slow": "every 1s"})
    runner = Recorder()
    runner.hold = True
    scheduler = BackupScheduler(config, text, runner)
    started.append(scheduler)
    scheduler.start()
    wait_for(lambda: runner.active.get("slow") == 1)
    wait_for(lambda: scheduler.refused_while_running["slow"] >= 3)
    assert runner.count("slow") == 0 and runner.active["slow"] == 1
    runner.release.set()
    wait_for(lambda: runner.count("slow") >= 1)


def test_missed_windows_after_a_pause_give_one_catch_up_run(tmp_path: Path, started: list[BackupScheduler]) -> None:
    config, text = make_config(tmp_path, {"acct": "every 1h"})
    runner = Recorder()
    scheduler = BackupScheduler(config, text, runner)
    started.append(scheduler)
    scheduler.start()
    wait_for(lambda: scheduler.completed["acct"] == 1)  # a new account runs at once
    scheduler.pause()
    job = scheduler._scheduler.get_job("acct")
    job.modify(next_run_time=utc_now() - timedelta(hours=3, minutes=30))  # as if paused for 3.5 windows
    scheduler.resume()
    wait_for(lambda: scheduler.completed["acct"] == 2)
    wait_for(lambda: (scheduler.next_runs()["acct"] or utc_now()) > utc_now())
    assert runner.count("acct") == 2
    assert scheduler.history[-1].status == "ok"


def test_restart_catches_up_once_and_keeps_future_runs(tmp_path: Path, started: list[BackupScheduler]) -> None:
    config, text = make_config(tmp_path, {"missed": "every 1h", "waiting": "every 1h"})
    future = utc_now() + timedelta(minutes=42)
    catalog = Catalog.open(tmp_path / "archive")
    try:
        for name in ("missed", "waiting"):  # both ran before, under this schedule
            run_id = catalog.start_run(catalog.ensure_account(name, "local"))
            catalog.finish_run(run_id, "ok", 0, 0, 0)
        save_next_run(catalog, "missed", "every 1h", utc_now() - timedelta(hours=5))  # the daemon was down 5 h
        save_next_run(catalog, "waiting", "every 1h", future)
    finally:
        catalog.close()
    runner = Recorder()
    scheduler = BackupScheduler(config, text, runner)
    started.append(scheduler)
    scheduler.start()
    wait_for(lambda: scheduler.completed["missed"] == 1)
    wait_for(lambda: (scheduler.next_runs()["missed"] or utc_now()) > utc_now() + timedelta(minutes=20))
    assert runner.count("missed") == 1 and runner.count("waiting") == 0
    assert scheduler.next_runs()["waiting"] == future
    catalog = Catalog.open(tmp_path / "archive")
    try:
        states = load_states(catalog)
    finally:
        catalog.close()
    assert states["missed"].last_status == "ok" and states["missed"].next_run_at > utc_now()
    assert states["waiting"].next_run_at == future


def test_reload_keeps_unchanged_jobs_and_applies_new_schedules(tmp_path: Path, started: list[BackupScheduler]) -> None:
    config, text = make_config(tmp_path, {"keep": "every 1h", "change": "every 1h", "drop": "every 1h"})
    runner = Recorder()
    scheduler = BackupScheduler(config, text, runner)
    started.append(scheduler)
    scheduler.start()
    wait_for(lambda: all(scheduler.completed[n] == 1 for n in ("keep", "change", "drop")))
    wait_for(lambda: all(w is not None and w > utc_now() for w in scheduler.next_runs().values()))
    before = scheduler.next_runs()
    new_config, new_text = make_config(tmp_path, {"keep": "every 1h", "change": "0 3 * * *", "new": "off"})
    scheduler.apply(new_config, new_text)
    after = scheduler.next_runs()
    assert set(after) == {"keep", "change"}  # "drop" removed, "new" is off
    assert after["keep"] == before["keep"]
    assert after["change"] is not None and (after["change"].hour, after["change"].minute) == (3, 0)
