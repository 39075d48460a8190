"""Background jobs started from the web UI (a backup, a restore) and the page that follows one.

A restore or a backup can take minutes, longer than a browser or a proxy waits for
one response, so every such request starts a thread and redirects to
``/jobs/<id>``.  That page refreshes itself (a ``<meta http-equiv="refresh">``:
the app's pages run no script) until the job has finished, then shows its result.

Jobs live in memory only: a restart of ``archiver serve`` forgets them (the backup
runs themselves are in the catalog; a restore is idempotent, so running it again
appends only what is missing).  Ids are random, and a job is shown to the user
who started it only (404 for anyone else, like every other id in the UI).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, current_app, g, render_template

from archiver.times import now_iso
from web.auth import login_required

bp = Blueprint("jobs", __name__)
log = logging.getLogger("archiver.web")
KEEP_JOBS = 200  # finished jobs kept for their result pages; the oldest are dropped first


@dataclass
class Job:
    """One background task: who started it, what it is doing, how it ended."""

    id: str
    kind: str  # "backup" or "restore"
    owner: str
    account: str
    title: str
    started_at: str
    total_messages: int = 0
    total_bytes: int = 0
    done_messages: int = 0
    done_bytes: int = 0
    current: str = ""
    result: Any = None  # a RunReport or RestoreReport once finished
    error: str | None = None
    finished_at: str | None = None
    thread: threading.Thread | None = field(default=None, repr=False)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.finished_at is None

    # the Progress protocol of archiver.progress and archiver.restore.plan
    def folder(self, name: str, messages: int, size: int) -> None:
        self.current = name
        if self.kind == "backup":
            self.total_messages += messages
            self.total_bytes += size

    def advance(self, messages: int, size: int) -> None:
        self.done_messages += messages
        self.done_bytes += size


class JobRegistry:
    """The app's jobs, by id; one running job per (kind, account) at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def running(self, kind: str, account: str) -> Job | None:
        with self._lock:
            return next((j for j in self._jobs.values() if j.kind == kind and j.account == account and j.running), None)

    def active(self) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if j.running]

    def of_user(self, owner: str, limit: int = 20) -> list[Job]:
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.owner == owner]
        return sorted(jobs, key=lambda j: j.started_at, reverse=True)[:limit]

    def start(self, job: Job, work: Callable[[Job], Any]) -> Job:
        """Run ``work(job)`` in a daemon thread; its return value becomes ``job.result``."""

        def run() -> None:
            try:
                job.result = work(job)
            except Exception as exc:  # a thread has nobody to raise to: the job page shows it, the log keeps it
                log.exception("web %s job %s (%s) failed", job.kind, job.id, job.account)
                job.error = str(exc) or exc.__class__.__name__
            finally:
                job.finished_at = now_iso()

        with self._lock:
            finished = [j for j in self._jobs.values() if not j.running]
            for old in sorted(finished, key=lambda j: j.started_at)[: max(0, len(self._jobs) - KEEP_JOBS + 1)]:
                del self._jobs[old.id]
            self._jobs[job.id] = job
        job.thread = threading.Thread(target=run, name=f"web-{job.kind}-{job.account}", daemon=True)
        job.thread.start()
        return job


def new_job(kind: str, account: str, title: str, **details: Any) -> Job:
    return Job(secrets.token_urlsafe(12), kind, g.user.name, account, title, now_iso(), details=details)


def registry() -> JobRegistry:
    return current_app.extensions["archiver_jobs"]


@bp.route("/jobs/<job_id>")
@login_required
def job(job_id: str) -> Any:
    found = registry().get(job_id) if len(job_id) < 40 else None
    if found is None or found.owner != g.user.name:
        abort(404)
    return render_template("job.html", job=found, elapsed=_elapsed(found))


def _elapsed(job: Job) -> float:
    start = datetime.fromisoformat(job.started_at)
    end = datetime.fromisoformat(job.finished_at) if job.finished_at else datetime.now(UTC)
    return max(0.0, (end - start).total_seconds())


def wait(job: Job, timeout: float = 60.0) -> None:
    """For tests and the bench: block until the job has finished (or the timeout)."""
    deadline = time.monotonic() + timeout
    while job.running and time.monotonic() < deadline:
        if job.thread is not None:
            job.thread.join(0.1)
