"""The daemon's scheduler: when each account is backed up, on APScheduler 3.

One job per account, from its ``schedule`` (or ``[scheduler] default_schedule``):

* ``max_instances=1``: a run never overlaps itself (a long run makes the next
  fire time a logged no-op; the account's flock also guards other processes);
* ``coalesce=True`` with a generous ``misfire_grace_time``: after a pause or a
  suspend, the missed fire times become one catch-up run, not a burst;
* a thread pool of ``max_concurrent`` workers bounds how many accounts run at once;
* jitter from the trigger spreads fire times over ``jitter`` seconds;
* the next run time is persisted in the catalog (``schedule_state``) after each
  run, so a restarted daemon runs what it missed once and keeps the cadence.

Each backup runs in a child process (``python -m archiver.daemon.scheduler``), given
the daemon's last *valid* config text on stdin: a broken config file on disk
cannot break the runs of a daemon that kept its old config, the daemon's own
memory stays small, and stopping is a SIGTERM to the child (committed batches
are durable; the child commits the batch in hand on SIGTERM and the next run
fetches only what is missing).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from archiver.archive import make_layout
from archiver.backup.faults import format_duration
from archiver.catalog import Catalog
from archiver.config import Config, config_from_toml_text
from archiver.daemon.schedule import (
    RunOutcome,
    Schedule,
    ScheduleState,
    load_states,
    mark_interrupted,
    mark_timed_out,
    parse_schedule,
    save_finished,
    save_next_run,
    save_started,
)
from archiver.errors import ArchiverError
from archiver.mail.headers import utc_now

log = logging.getLogger("archiver.scheduler")

#: ``runner(config_text, config, account_name) -> RunOutcome``: how one backup is carried out.
AccountRunner = Callable[[str, Config, str], RunOutcome]
STOP_GRACE_SECONDS = 4.0
#: How long past its ``max_run_time`` a backup child may take before the daemon stops it: the run itself
#: stops at the limit (every read has a deadline), then commits, closes and updates the search index.
RUN_GRACE_SECONDS = 600.0


def account_schedule(config: Config, name: str) -> Schedule:
    """The parsed schedule of an account: its own, else the global default (both validated at load)."""
    account = config.account(name)
    return parse_schedule(account.schedule or config.scheduler.default_schedule)


class SubprocessRunner:
    """Runs one backup as ``python -m archiver.daemon.scheduler --account NAME`` with the config text on stdin."""

    def __init__(self, log_level: str = "INFO", log_format: str = "text", run_grace: float = RUN_GRACE_SECONDS) -> None:
        self.log_level = log_level
        self.log_format = log_format
        self.run_grace = run_grace
        self._children: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._stopping = False

    def command(self, config: Config, name: str) -> list[str]:
        command = [sys.executable, "-m", "archiver.daemon.scheduler", "--account", name, "--source", str(config.source)]
        return [*command, "--log-level", self.log_level, "--log-format", self.log_format]

    def __call__(self, config_text: str, config: Config, name: str) -> RunOutcome:
        command = self.command(config, name)
        limit = config.archive.max_run_time
        with self._lock:
            if self._stopping:
                return RunOutcome(name, "interrupted")
            # Own session: a terminal's Ctrl-C reaches the daemon, which then stops the children itself.
            child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
            self._children[name] = child
        try:
            out, _ = child.communicate(config_text.encode(), timeout=None if limit is None else limit + self.run_grace)
        except subprocess.TimeoutExpired:
            return self._overdue(config, name, child, limit or 0)
        finally:
            with self._lock:
                self._children.pop(name, None)
        return self._outcome(name, child.returncode, out)

    def _overdue(self, config: Config, name: str, child: subprocess.Popen, limit: int) -> RunOutcome:
        """Stop a child past its time (its whole process group, by pid) and record its run as failed.

        Without this a backup that hangs anywhere (a server, a disk, the index) would hold the
        account's slot in the daemon for ever and no later run of the account would start.
        """
        message = (
            f"{name}: the backup ran past max_run_time ({format_duration(limit)}) plus "
            f"{format_duration(self.run_grace)} of grace and was stopped; the next run continues"
        )
        log.error("%s (pid %s)", message, child.pid)
        _signal_group(child, signal.SIGTERM)
        try:
            child.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(child, signal.SIGKILL)
        child.communicate()
        with contextlib.suppress(ArchiverError), Catalog.open(Path(config.archive.path)) as catalog:
            mark_timed_out(catalog, name, message)
        return RunOutcome(name, "failed", problems=(message,))

    def _outcome(self, name: str, returncode: int, out: bytes) -> RunOutcome:
        lines = out.decode("utf-8", "replace").strip().splitlines()
        try:
            data = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            if self._stopping:
                return RunOutcome(name, "interrupted")
            return RunOutcome(name, "failed", problems=(f"the backup process exited with code {returncode}",))
        return RunOutcome(
            account=name,
            status=str(data.get("status", "failed")),
            run_id=data.get("run"),
            problems=tuple(data.get("problems", ())),
            messages_new=int(data.get("messages_new", 0)),
            bytes_fetched=int(data.get("bytes_fetched", 0)),
            bytes_stored=int(data.get("bytes_stored", 0)),
            seconds=float(data.get("seconds", 0.0)),
        )

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM every running backup, SIGKILL what is still alive after ``grace`` seconds."""
        with self._lock:
            self._stopping = True
            children = list(self._children.items())
        for name, child in children:
            log.info("stopping backup account=%s pid=%s", name, child.pid)
            _signal(child, signal.SIGTERM)
        for name, child in children:
            try:
                child.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log.warning("backup did not stop in time, killing it account=%s pid=%s", name, child.pid)
                _signal(child, signal.SIGKILL)
                child.wait()


def _signal(child: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(signum)


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    """Signal the child's process group (it leads its own session: ``start_new_session``), by its pid."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signum)


class BackupScheduler:
    """APScheduler jobs for the configured accounts, with persisted next runs and alerts after each run."""

    def __init__(self, config: Config, config_text: str, runner: AccountRunner | None = None) -> None:
        self.config = config
        self.config_text = config_text
        self.runner = runner or SubprocessRunner()
        self.history: list[RunOutcome] = []  # this process's runs, newest last (tests, the daemon's status line)
        self.refused_while_running: Counter[str] = Counter()  # fire times dropped because the run was still going
        self.completed: Counter[str] = Counter()  # jobs APScheduler saw finish (its instance slot is free again)
        self._keys: dict[str, tuple[str, int]] = {}
        self._state_lock = threading.Lock()
        self._idle = threading.Condition()
        self._active = 0  # runs in progress in this process
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=config.scheduler.max_concurrent)},
            job_defaults=self._job_defaults(config),
        )
        self._scheduler.add_listener(
            self._on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
        )
        logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)  # _on_event logs these, one line each

    @staticmethod
    def _job_defaults(config: Config) -> dict:
        return {"max_instances": 1, "coalesce": True, "misfire_grace_time": max(1, config.scheduler.misfire_grace)}

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._scheduler.start()
        self.apply(self.config, self.config_text)

    def stop(self) -> None:
        """Stop scheduling, stop running backups (committed work stays), return within a few seconds."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        stop = getattr(self.runner, "stop", None)
        if stop is not None:
            stop()
        with self._idle:  # let the stopped runs record themselves (state, "interrupted" next run)
            self._idle.wait_for(lambda: self._active == 0, timeout=STOP_GRACE_SECONDS)

    def pause(self) -> None:
        self._scheduler.pause()

    def resume(self) -> None:
        self._scheduler.resume()

    def next_runs(self) -> dict[str, datetime | None]:
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    # -- configuration -------------------------------------------------------------------------

    def apply(self, config: Config, config_text: str) -> None:
        """Make the jobs match ``config`` (start and SIGHUP): unchanged schedules keep their next run."""
        if config.scheduler.max_concurrent != self.config.scheduler.max_concurrent:
            log.warning("scheduler.max_concurrent changes take effect at the next daemon restart")
        self.config, self.config_text = config, config_text
        wanted = {a.name for a in config.accounts}
        for name in list(self._keys):
            if name not in wanted:
                self._scheduler.remove_job(name)
                del self._keys[name]
                log.info("account unscheduled account=%s", name)
        with self._catalog() as catalog:
            states = load_states(catalog)
            ever_ran = {
                row[0]
                for row in catalog.db.execute(
                    "SELECT DISTINCT a.name FROM accounts a JOIN runs r ON r.account_id = a.id"
                )
            }
        for account in config.accounts:
            schedule = account_schedule(config, account.name)
            key = (schedule.text, config.scheduler.jitter)
            if self._keys.get(account.name) == key:
                self._scheduler.modify_job(account.name, **self._job_defaults(config))
                continue
            if account.name in self._keys:
                self._scheduler.remove_job(account.name)
                del self._keys[account.name]
            if schedule.kind == "off":
                log.info("account not scheduled account=%s schedule=off", account.name)
                continue
            first = self._first_run(account.name, schedule, states.get(account.name), account.name in ever_ran)
            self._scheduler.add_job(
                self._job,
                trigger=schedule.trigger(config.scheduler.jitter, start=first if schedule.kind == "interval" else None),
                args=(account.name,),
                id=account.name,
                name=f"backup {account.name}",
                next_run_time=first,
                **self._job_defaults(config),
            )
            self._keys[account.name] = key
            self._persist_next(account.name)
            log.info("account scheduled account=%s schedule=%r next_run=%s", account.name, schedule.text, first)

    def _first_run(self, name: str, schedule: Schedule, state: ScheduleState | None, ever_ran: bool) -> datetime:
        """When an account is due after a (re)start: a missed run is caught up once, right away."""
        now = utc_now()
        if state is not None and state.schedule == schedule.text and state.next_run_at is not None:
            if state.next_run_at <= now:
                log.info("missed a run while stopped, catching up once account=%s due=%s", name, state.next_run_at)
                return now
            return state.next_run_at
        if not ever_ran:
            return now  # a new account is backed up right away, not after its first interval
        fire = schedule.trigger(self.config.scheduler.jitter).get_next_fire_time(None, now)
        return fire or now

    # -- running -------------------------------------------------------------------------------

    def run_now(self, name: str) -> RunOutcome:
        """Back up one account now, in this thread: the body of every scheduled job (and of ``--once``)."""
        config, text = self.config, self.config_text
        try:
            config.account(name)
        except ArchiverError:
            log.warning("skipping a run of an account no longer configured account=%s", name)
            return RunOutcome(name, "skipped")
        with self._idle:
            self._active += 1
        try:
            with self._catalog() as catalog:
                save_started(catalog, name)
            log.info("run started account=%s", name)
            try:
                outcome = self.runner(text, config, name)
            except Exception as exc:  # a worker thread has nobody to raise to: the run failed, say why
                log.exception("run crashed account=%s", name)
                outcome = RunOutcome(name, "failed", problems=(f"the scheduler could not run the backup: {exc}",))
            self._finish(config, outcome)
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()
        return outcome

    def _job(self, name: str) -> None:
        self.run_now(name)

    def _finish(self, config: Config, outcome: RunOutcome) -> None:
        from archiver.daemon.alerts import Notifier

        name = outcome.account
        with self._state_lock, self._catalog() as catalog:
            state = load_states(catalog).get(name)
            was_failing = bool(state and state.failing)
        failing = was_failing
        if outcome.status != "interrupted":
            failing = Notifier(config.alerts).after_run(outcome, was_failing)
        with self._state_lock, self._catalog() as catalog:
            save_finished(catalog, name, outcome.status, outcome.run_id, failing)
        if outcome.status == "interrupted":
            self._persist_next(name, due_now=True)  # the restart finishes what was cut short
        else:
            self._persist_next(name, after_run=True)
        self.history.append(outcome)
        level = logging.INFO if outcome.status in ("ok", "skipped") else logging.WARNING
        log.log(
            level,
            "run finished account=%s status=%s run=%s new=%d fetched_bytes=%d seconds=%.1f problems=%d",
            name,
            outcome.status,
            outcome.run_id,
            outcome.messages_new,
            outcome.bytes_fetched,
            outcome.seconds,
            len(outcome.problems),
        )
        for problem in outcome.problems[:20]:
            log.warning("run problem account=%s: %s", name, problem)

    def _persist_next(self, name: str, *, after_run: bool = False, due_now: bool = False) -> None:
        """Save the account's next run time; a daemon killed before it is reached runs it at restart.

        ``after_run``: a quick run can end before APScheduler has moved the
        job on, so step the trigger past now.  ``due_now``: the run was cut
        short, so the restart must run it again at once.
        """
        key = self._keys.get(name)
        if key is None:
            return
        now = utc_now()
        when: datetime | None = now
        if not due_now:
            job = self._scheduler.get_job(name)
            if job is None:
                return
            when = job.next_run_time
            while after_run and when is not None and when <= now:
                when = job.trigger.get_next_fire_time(when, now)
        with self._state_lock, self._catalog() as catalog:
            save_next_run(catalog, name, key[0], when)

    def _on_event(self, event: JobExecutionEvent) -> None:
        if event.code in (EVENT_JOB_EXECUTED, EVENT_JOB_ERROR):
            self.completed[event.job_id] += 1
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            self.refused_while_running[event.job_id] += 1
            log.info("run still in progress, not started again account=%s", event.job_id)
        elif event.code == EVENT_JOB_MISSED:
            log.warning("run missed (too late) account=%s due=%s", event.job_id, event.scheduled_run_time)

    def _catalog(self) -> Catalog:
        """A short-lived connection: jobs run on pool threads, and SQLite connections are best not shared."""
        make_layout(self.config.archive)  # the daemon may be the first to touch the archive: make it private
        return Catalog.open(Path(self.config.archive.path))


# -- the child process ---------------------------------------------------------------------------


def child_main(argv: list[str] | None = None) -> int:
    """``python -m archiver.daemon.scheduler --account NAME --source PATH``: one backup; the config text on stdin.

    Prints one JSON line (the outcome) on stdout; logs go to stderr (the
    daemon's stderr, so the journal).  SIGTERM becomes SystemExit, so the
    ``finally`` blocks of the run commit the batch already durable and close
    the connection.
    """
    from archiver.backup import run_backup
    from archiver.logs import setup_logging

    parser = argparse.ArgumentParser(prog="python -m archiver.daemon.scheduler")
    parser.add_argument("--account", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", default="text", choices=("text", "json"))
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    text = sys.stdin.read()
    outcome: dict
    try:
        config = config_from_toml_text(text, Path(args.source))
        outcome = run_backup(config, config.account(args.account)).as_dict()
    except ArchiverError as exc:
        # The account lock (archiver.archive) is held by another backup of this account: not a failure.
        status = "skipped" if "already running" in str(exc) else "failed"
        outcome = {"status": status, "problems": [str(exc)]}
    except SystemExit:  # stopped by the daemon: the batch in hand is committed; say so on the run row now
        with contextlib.suppress(Exception), Catalog.open(Path(config.archive.path)) as catalog:
            mark_interrupted(catalog, args.account)
        raise
    print(json.dumps({"account": args.account, **outcome}), flush=True)
    return 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(child_main())
