"""How far the search index lags behind the catalog, and who is catching it up: answered without Whoosh.

A backup returns once the mail is durable and leaves the index update to a
background worker (:mod:`archiver.backup.background`), so ``status``, the web UI,
``/metrics`` and ``archiver search`` must be able to say, cheaply and at any time,
what is not searchable yet.  Two sources, neither of which opens the index:

* the bookmark in the live generation's hint (:func:`archiver.index.hint.bookmark`),
  written after every completed update, against the catalog's rows past it;
* ``index/activity.json``: the process indexing now (or last), how far it is, and
  whether its update failed.  Whoever runs the update writes it (the worker, a
  backup waiting for its index, the daemon's backup child), atomically (temp +
  rename), so a reader never sees half a file.

The hint lags a running update by at most one update (it is written at the end), so
the lag reported here may overstate what is missing, never understate it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from archiver.archive import index_root
from archiver.index.hint import bookmark
from archiver.times import format_duration, now_iso, utc_now

if TYPE_CHECKING:
    from archiver.catalog import Catalog

ACTIVITY_FILE = "activity.json"
#: ``IndexActivity.role`` of the background worker (any other role is a backup indexing in its own process).
WORKER = "worker"


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie left by a parent that never reaped it is not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        pass  # no /proc here: ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process (an operator reading a daemon's archive)
    return True


@dataclass(frozen=True)
class IndexActivity:
    """The latest index update, as ``index/activity.json`` tells it.

    ``done``/``total``: messages written of those the current pass indexes; ``finished_at`` None while
    it runs (or when its process died before finishing); ``error``: the one line of a failed update.
    """

    pid: int
    role: str
    started_at: str
    updated_at: str
    done: int = 0
    total: int = 0
    finished_at: str | None = None
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.finished_at is None and process_alive(self.pid)

    @property
    def interrupted(self) -> bool:
        """It never finished and its process is gone (killed, out of memory, a power cut)."""
        return self.finished_at is None and not process_alive(self.pid)


def read_activity(archive_root: Path) -> IndexActivity | None:
    """The latest index update's record, None when there is none (or it cannot be read)."""
    try:
        data = json.loads((index_root(archive_root) / ACTIVITY_FILE).read_text(encoding="utf-8"))
        return IndexActivity(**data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


class ActivityRecorder:
    """Writes ``index/activity.json`` for one process's index update: start, progress, end.

    A record is written only once the process has something to say (it began indexing, or it
    failed), so a run with nothing to index leaves the previous record as it was.  Writing is
    best effort: the file only informs, and the update must never fail for it.
    """

    def __init__(self, archive_root: Path, role: str) -> None:
        self._path = index_root(archive_root) / ACTIVITY_FILE
        self._role = role
        self._current: IndexActivity | None = None

    @property
    def started(self) -> bool:
        return self._current is not None

    def begin(self, total: int = 0) -> None:
        now = now_iso()
        self._current = IndexActivity(os.getpid(), self._role, now, now, 0, total)
        self._write()

    def progress(self, done: int, total: int) -> None:
        if self._current is None:
            self.begin(total)
        assert self._current is not None
        self._current = replace(self._current, done=done, total=total, updated_at=now_iso())
        self._write()

    def finish(self, error: str | None = None) -> None:
        if self._current is None:
            self.begin()
        assert self._current is not None
        now = now_iso()
        self._current = replace(self._current, updated_at=now, finished_at=now, error=error)
        self._write()

    def _write(self) -> None:
        temp = self._path.with_name(f"{ACTIVITY_FILE}.{os.getpid()}.tmp")
        try:
            temp.write_text(json.dumps(asdict(self._current)), encoding="utf-8")
            os.replace(temp, self._path)
        except OSError:
            temp.unlink(missing_ok=True)


@dataclass(frozen=True)
class IndexLag:
    """How far search lags the archive: what is not searchable yet, and what is being done about it."""

    messages: int  # archived messages not yet (known to be) in the index
    changes: int  # indexed messages whose folders or flags changed since (their old ones are still searched)
    oldest_seconds: float | None  # how long the oldest of those messages has waited
    activity: IndexActivity | None  # the latest index update (running, finished or interrupted)

    @property
    def behind(self) -> bool:
        return bool(self.messages or self.changes)

    @property
    def updating(self) -> bool:
        return self.activity is not None and self.activity.running

    @property
    def failed(self) -> str | None:
        """The last update's error, if it failed and nothing has caught up since."""
        return self.activity.error if self.activity is not None and self.behind else None

    def as_dict(self) -> dict:
        activity = self.activity
        return {
            "messages_behind": self.messages,
            "changes_behind": self.changes,
            "oldest_unindexed_seconds": None if self.oldest_seconds is None else round(self.oldest_seconds, 1),
            "updating": self.updating,
            "worker_running": self.updating and activity is not None and activity.role == WORKER,
            "pid": activity.pid if self.updating and activity is not None else None,
            "done": activity.done if self.updating and activity is not None else None,
            "total": activity.total if self.updating and activity is not None else None,
            "last_error": self.failed,
        }

    def summary(self) -> str:
        """One line for a person: "up to date", or what lags, since when, and what is catching it up."""
        if not self.behind:
            return "up to date"
        parts = []
        if self.messages:
            waited = f", the oldest archived {format_duration(self.oldest_seconds)} ago" if self.oldest_seconds else ""
            parts.append(f"{self.messages} message(s) not searchable yet{waited}")
        if self.changes:
            parts.append(f"{self.changes} message(s) with folder or flag changes not applied yet")
        line = "; ".join(parts)
        activity = self.activity
        if activity is not None and self.updating:
            who = "background worker" if activity.role == WORKER else "a backup"
            done = f": {activity.done} of {activity.total} indexed" if activity.total else ""
            return f"{line}; being indexed now ({who}, pid {activity.pid}){done}"
        if self.failed:
            return f"{line}; the last index update failed: {self.failed}"
        if activity is not None and activity.interrupted:
            stopped = f"the index update (pid {activity.pid}) stopped before it finished"
            return f"{line}; {stopped}; the next backup resumes it"
        return f"{line}; the next backup indexes them (or `archiver backup --wait-index`)"


def index_lag(archive_root: Path, catalog: Catalog, *, quick: bool = False) -> IndexLag:
    """The index's lag now: the hint, a few indexed catalog lookups and one small file; never Whoosh.

    ``quick``: for a notice asked on every search, folder and flag changes are counted only when no new
    message waits (then they cost nothing; else the messages are what the notice is about).
    """
    backlog = catalog.index_backlog(bookmark(archive_root), count_changes=not quick)
    oldest = None
    if backlog.oldest_added_at:
        try:
            oldest = max(0.0, (utc_now() - datetime.fromisoformat(backlog.oldest_added_at)).total_seconds())
        except (ValueError, TypeError):
            oldest = None
    return IndexLag(backlog.messages, backlog.changes, oldest, read_activity(archive_root))


__all__ = ["ACTIVITY_FILE", "WORKER", "ActivityRecorder", "IndexActivity", "IndexLag", "index_lag", "read_activity"]
