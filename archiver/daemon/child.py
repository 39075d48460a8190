"""One backup in a child process: how every scheduled and web-started backup runs.

``python -m archiver.daemon.child --account NAME --source PATH`` reads the config
text on stdin and backs up the account once.  The parent side is
:class:`SubprocessRunner`; the daemon's scheduler and the web UI's "Back up now"
both use it, so there is one execution path and one lock story (the account's
flock, taken by :func:`archiver.backup.runner.run_backup` in the child):

* the config is the text the parent runs with (a broken file on disk cannot
  break the runs of a daemon that kept its valid config);
* the parent's memory stays small, and stopping is a SIGTERM to the child's
  process group: SIGTERM becomes SystemExit in the child, so the batch already
  durable is committed and the run row says ``interrupted``;
* a child past ``max_run_time`` plus :data:`RUN_GRACE_SECONDS` is stopped and
  its run recorded as failed.

The child writes JSON lines on stdout: progress events
(``{"progress": "folder", "name", "messages", "bytes"}``, ``{"progress":
"advance", "messages", "bytes"}``) and, last, the run report
(:func:`report_line`).  Logs go to stderr (the parent's, so the journal).
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
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from archiver.backup import Progress, RunReport, run_backup
from archiver.catalog import Catalog
from archiver.catalog.schedule_state import mark_interrupted, mark_timed_out
from archiver.config import Config, config_from_toml_text
from archiver.daemon.status import RunOutcome
from archiver.errors import ArchiverError
from archiver.logs import setup_logging
from archiver.times import format_duration

log = logging.getLogger("archiver.scheduler")

STOP_GRACE_SECONDS = 4.0
#: How long past its ``max_run_time`` a backup child may take before the daemon stops it: the run itself
#: stops at the limit (every read has a deadline), then commits, closes and updates the search index.
RUN_GRACE_SECONDS = 600.0


class SubprocessRunner:
    """Runs one backup as ``python -m archiver.daemon.child --account NAME`` with the config text on stdin.

    Called as the scheduler's ``AccountRunner`` it returns a :class:`RunOutcome`;
    :meth:`run` returns the whole :class:`RunReport` and forwards the child's
    progress (the web UI's job page).
    """

    def __init__(self, log_level: str = "INFO", log_format: str = "text", run_grace: float = RUN_GRACE_SECONDS) -> None:
        self.log_level = log_level
        self.log_format = log_format
        self.run_grace = run_grace
        self._children: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._stopping = False

    def command(self, config: Config, name: str) -> list[str]:
        command = [sys.executable, "-m", "archiver.daemon.child", "--account", name, "--source", str(config.source)]
        return [*command, "--log-level", self.log_level, "--log-format", self.log_format]

    def __call__(self, config_text: str, config: Config, name: str) -> RunOutcome:
        report = self.run(config_text, config, name)
        return RunOutcome(
            account=name,
            status=report.status,
            run_id=report.run_id,
            problems=tuple(report.problems),
            messages_new=report.messages_new,
            bytes_fetched=report.bytes_fetched,
            bytes_stored=report.bytes_stored,
            seconds=report.seconds,
        )

    def run(self, config_text: str, config: Config, name: str, progress: Progress | None = None) -> RunReport:
        """Back up ``name`` in a child and wait for it; never raises for a failed run (the report says why)."""
        command = self.command(config, name)
        limit = config.archive.max_run_time
        with self._lock:
            if self._stopping:
                return RunReport(name, status="interrupted")
            # Own session: a terminal's Ctrl-C reaches the parent, which then stops the children itself.
            child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
            self._children[name] = child
        last: list[dict] = []
        reader = threading.Thread(
            target=_read_lines, args=(child.stdout, progress or Progress(), last), name=f"backup-{name}", daemon=True
        )
        reader.start()
        try:
            try:
                child.stdin.write(config_text.encode())
            except BrokenPipeError:
                pass  # a child that died at once: its exit code says so
            finally:
                with contextlib.suppress(BrokenPipeError):
                    child.stdin.close()
            try:
                child.wait(timeout=None if limit is None else limit + self.run_grace)
            except subprocess.TimeoutExpired:
                return self._overdue(config, name, child, limit or 0)
            finally:
                reader.join()
        finally:
            with self._lock:
                self._children.pop(name, None)
        if not last:
            status = "interrupted" if self._stopping else "failed"
            problems = [] if self._stopping else [f"the backup process exited with code {child.returncode}"]
            return RunReport(name, status=status, problems=problems)
        return report_from_line(name, last[0])

    def _overdue(self, config: Config, name: str, child: subprocess.Popen, limit: int) -> RunReport:
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
            child.wait()
        with contextlib.suppress(ArchiverError), Catalog.open(Path(config.archive.path)) as catalog:
            mark_timed_out(catalog, name, message)
        return RunReport(name, status="failed", problems=[message])

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

    close = stop  # an app's resources are closed when the daemon or ``archiver serve`` stops


def _read_lines(stream: IO[bytes], progress: Progress, last: list[dict]) -> None:
    """Forward the child's progress events; keep its final report (the last JSON object that is not progress)."""
    for data in _json_lines(stream):
        event = data.get("progress")
        if event == "folder":
            progress.folder(str(data.get("name", "")), int(data.get("messages", 0)), int(data.get("bytes", 0)))
        elif event == "advance":
            progress.advance(int(data.get("messages", 0)), int(data.get("bytes", 0)))
        elif event is None:
            last[:] = [data]


def _json_lines(stream: IO[bytes]) -> Iterator[dict]:
    with stream:
        for line in stream:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                yield data


def _signal(child: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(signum)


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    """Signal the child's process group (it leads its own session: ``start_new_session``), by its pid."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signum)


# -- the two ends of the report line ---------------------------------------------------------------


def report_line(report: RunReport) -> dict[str, Any]:
    """The child's last stdout line: :meth:`RunReport.as_dict`, the shape the CLI and the web UI show too."""
    return report.as_dict()


def report_from_line(name: str, data: dict[str, Any]) -> RunReport:
    """The parent's :class:`RunReport` from the child's last line (unknown keys ignored, types checked)."""
    return RunReport.from_dict({**data, "account": name})


# -- the child process -----------------------------------------------------------------------------


class _LineProgress(Progress):
    """The child's progress, as JSON lines on stdout for the parent."""

    def folder(self, name: str, messages: int, size: int) -> None:
        _emit({"progress": "folder", "name": name, "messages": messages, "bytes": size})

    def advance(self, messages: int, size: int) -> None:
        _emit({"progress": "advance", "messages": messages, "bytes": size})


def _emit(data: dict[str, Any]) -> None:
    print(json.dumps(data), flush=True)


def child_main(argv: list[str] | None = None) -> int:
    """``python -m archiver.daemon.child --account NAME --source PATH``: one backup; the config text on stdin.

    Prints JSON lines on stdout (progress, then the report); logs go to stderr.
    SIGTERM becomes SystemExit, so the ``finally`` blocks of the run commit the
    batch already durable and close the connection.
    """
    parser = argparse.ArgumentParser(prog="python -m archiver.daemon.child")
    parser.add_argument("--account", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", default="text", choices=("text", "json"))
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    text = sys.stdin.read()
    try:
        config = config_from_toml_text(text, Path(args.source))
        report = run_backup(config, config.account(args.account), progress=_LineProgress())
    except ArchiverError as exc:
        # The account lock (archiver.archive) is held by another backup of this account: not a failure.
        status = "skipped" if "already running" in str(exc) else "failed"
        report = RunReport(args.account, status=status, problems=[str(exc)])
    except SystemExit:  # stopped by the parent: the batch in hand is committed; say so on the run row now
        with contextlib.suppress(Exception), Catalog.open(Path(config.archive.path)) as catalog:
            mark_interrupted(catalog, args.account)
        raise
    _emit(report_line(report))
    return 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(child_main())
