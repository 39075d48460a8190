"""The index update a backup leaves running: a detached worker that catches the index up, then exits.

``archiver backup`` returns as soon as the mail is durable (blobs fsynced, the
catalog committed) and starts this worker for the search index, which takes
far longer than the fetch on a first backup.  The worker:

* runs as ``python -m archiver.backup.background --config PATH …`` in its own
  session (a terminal's Ctrl-C or hang-up does not reach it), with no terminal:
  stdin from /dev/null, stdout and stderr appended to ``index/worker.log``; it
  keeps the umask of the command that started it, so its files are as private;
* holds ``index/worker.lock`` (flock) while it works, so one worker runs at a
  time: a second one started meanwhile exits at once, and the first looks again
  after letting go of the lock, so the mail of a backup that finished while it
  worked is never left behind;
* loops :func:`~archiver.backup.indexing.update_search_index` until the index
  has caught up with the catalog (backups may land meanwhile), reporting its
  progress and any failure in ``index/activity.json`` (:mod:`archiver.index.lag`);
* then compacts the index for at most :data:`COMPACT_SECONDS` (merging segments of
  similar size, within ``[index] memory_mb``: :func:`archiver.index.compact`), the
  work the updates themselves leave out so that their cost follows the new mail.

It reads the same config file as the command that started it, so it opens the
archive exactly as that command did (an encrypted archive's key, an S3 store).

Killed at any point it loses nothing: the index's bookmark is committed with
every batch, and the next worker (or ``archiver backup --wait-index``) resumes
from it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from archiver.archive import Archive, index_root
from archiver.backup.indexing import IndexOutcome, compact_quietly, update_search_index
from archiver.config import load_config
from archiver.errors import ArchiverError
from archiver.index.hint import bookmark, up_to_date
from archiver.index.lag import WORKER, ActivityRecorder, read_activity
from archiver.logs import setup_logging
from archiver.progress import IndexProgress

log = logging.getLogger("archiver.index")

LOCK_FILE = "worker.lock"
LOG_FILE = "worker.log"
LOG_KEEP_BYTES = 1 << 20  # the log is cut back to nothing once it grows past this
#: How long one pass waits for another index writer (a daemon's backup, ``reindex``) before trying again.
LOCK_WAIT_SECONDS = 300.0
MAX_PASSES = 1000  # a bound, never reached in practice: each pass indexes what landed during the one before
COMPACT_SECONDS = 300.0  # compaction after catching up stops between steps once this is spent


def start_worker(archive: Archive, config_file: Path, run_id: int, memory_mb: int) -> int | None:
    """Start the detached worker for what the catalog holds past the index; its pid, None when nothing is due.

    Costs a process start, never Whoosh: the no-change run sees the index up to date and starts nothing.
    """
    if up_to_date(archive.root, archive.catalog):
        return None
    root = index_root(archive.root)
    root.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "archiver.backup.background", "--config", str(config_file)]
    command += ["--run-id", str(run_id), "--memory-mb", str(memory_mb)]
    with open(root / LOG_FILE, "ab") as log_file:
        worker = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True, close_fds=True
        )
    worker.returncode = 0  # never waited for: it outlives this process (and Popen must not warn that it runs)
    return worker.pid


@contextlib.contextmanager
def worker_lock(archive_root: Path) -> Iterator[bool]:
    """Hold ``index/worker.lock``; yields False (at once) when another worker holds it."""
    fd = os.open(index_root(archive_root) / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o640)  # the umask narrows it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            yield False
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield True
    finally:
        os.close(fd)


def catch_up(archive: Archive, run_id: int, memory_mb: int | None) -> bool:
    """What the worker does: index until the index has caught up with the catalog; False if an update failed.

    Returns at once (True) when another worker holds the lock: that one looks again after letting go.
    """
    while True:
        with worker_lock(archive.root) as held:
            if not held:
                return True
            _trim_log(archive.root)
            if not _drain(archive, run_id, memory_mb):
                return False
            compact_quietly(archive, memory_mb, COMPACT_SECONDS)
        # Looked at after letting go: a backup whose worker found the lock held just now relies on it.
        if up_to_date(archive.root, archive.catalog):
            return True


def _drain(archive: Archive, run_id: int, memory_mb: int | None) -> bool:
    recorder = ActivityRecorder(archive.root, WORKER)
    recorder.begin(archive.catalog.index_backlog(bookmark(archive.root)).messages)
    outcome = IndexOutcome()
    for _ in range(MAX_PASSES):
        outcome = update_search_index(
            archive, run_id, memory_mb, role=WORKER, wait=LOCK_WAIT_SECONDS, recorder=recorder
        )
        if outcome.error is not None:
            return False
        if up_to_date(archive.root, archive.catalog):
            break
        if not outcome.skipped and not outcome.indexed:
            break  # nothing more it can do (the hint could not be written?): not a reason to spin
    recorder.finish()
    return True


def _trim_log(archive_root: Path) -> None:
    path = index_root(archive_root) / LOG_FILE
    with contextlib.suppress(OSError):
        if path.stat().st_size > LOG_KEEP_BYTES:
            os.truncate(path, 0)  # appended to (O_APPEND) by every worker: cutting it back is safe


def wait_for_worker(archive_root: Path, progress: IndexProgress, poll: float = 0.2) -> None:
    """Wait until no background worker is indexing, feeding its progress to ``progress`` (a bar or log lines)."""
    while (activity := read_activity(archive_root)) is not None and activity.role == WORKER and activity.running:
        if activity.total:
            progress(min(activity.done, activity.total), activity.total)
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m archiver.backup.background", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, type=Path, help="the config file of the command that started it")
    parser.add_argument("--run-id", required=True, type=int, help="the run whose problems an index failure joins")
    parser.add_argument("--memory-mb", type=int, default=None)
    args = parser.parse_args(argv)
    setup_logging("INFO")
    try:
        with Archive(load_config(args.config).archive) as archive:
            return 0 if catch_up(archive, args.run_id, args.memory_mb) else 1
    except ArchiverError as exc:
        log.error("index worker: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
