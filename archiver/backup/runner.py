"""The skeleton of one backup run of one account, whatever the protocol: server → blob store → catalog.

:func:`run_account` takes the account's lock, opens the run row, lets a
:class:`SourceRun` sync every folder, finishes the run row and fills the
:class:`~archiver.backup.report.RunReport`.  :class:`SourceRun` holds what
every protocol's run shares: the folder loop, the reconnect after a dropped
connection and the run's time limit (:mod:`archiver.backup.faults`), and the
fetch → store → record pipeline (:mod:`archiver.backup.pipeline`).  The IMAP and
POP3 specifics live in :mod:`archiver.backup.imap` and :mod:`archiver.backup.pop3`.

Order of durability, batch by batch: the blobs are fsynced under their final
names, then the catalog transaction that records them commits.  A folder's
sync state is saved only once the whole folder is done, so a run killed at any
instant leaves the folder "changed" and the next run fetches only what the
catalog lacks.  For the same reason a folder whose connection dropped is simply
synced again after a reconnect, and the time limit is checked before each batch.
A full disk or a failing catalog stops the run at once with one problem line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, Protocol, TypeVar

from archiver.archive import Archive
from archiver.backup.faults import (
    FATAL_ERRORS,
    MAX_DROPS_WITHOUT_PROGRESS,
    RunClock,
    RunTimeLimit,
    is_dropped,
    reconnect,
    record_quietly,
)
from archiver.backup.indexing import compact_quietly, update_search_index
from archiver.backup.pipeline import StorePipeline
from archiver.backup.report import FolderOutcome, RunReport
from archiver.backup.snapshot import snapshot_after_run
from archiver.backup.throttle import ThrottleBackoff
from archiver.catalog import FolderRecord
from archiver.config import AccountConfig, Config
from archiver.errors import ArchiverError, ConnectError, ServerLimitReached, Throttled
from archiver.progress import Progress
from archiver.sources.model import FetchedMessage
from archiver.sources.wire import WireLimits

log = logging.getLogger("archiver.backup")
T = TypeVar("T")
K = TypeVar("K")  # how a source names a message it can fetch (an IMAP UID, a POP3 message number)
#: After a run that indexed something (the daemon, the web UI): compaction stops between steps once this is spent.
COMPACT_SECONDS = 60.0


class FolderLike(Protocol):
    @property
    def name(self) -> str: ...


F = TypeVar("F", bound=FolderLike)


class Source(Protocol):
    """What the skeleton needs of a protocol's connection (:mod:`archiver.sources`)."""

    limits: WireLimits

    @property
    def where(self) -> str: ...  # "account: host:port", the start of the source's error lines

    @property
    def connected(self) -> bool: ...

    def connect(self) -> object: ...

    def close(self) -> None: ...


class SyncAgain(Exception):  # a signal between a source-specific run and the skeleton, never shown as such
    """Sync the folder again, from what the catalog holds, on a new session when the source closed it.

    Raised by a source-specific run when the session is out of step (a message grew past
    ``max_message_bytes`` while it was read: the message is set aside first).  ``fetched`` are the
    messages of the interrupted batch already read: they are still stored and recorded.
    """

    def __init__(self, fetched: Sequence[FetchedMessage] = ()) -> None:
        super().__init__()
        self.fetched = list(fetched)


def plan_batches(uids: Sequence[K], sizes: dict[K, int], max_bytes: int, max_messages: int) -> Iterator[list[K]]:
    """Group UIDs into fetch batches bounded by bytes and count (a huge message goes alone)."""
    batch: list[K] = []
    batch_bytes = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if batch and (batch_bytes + size > max_bytes or len(batch) >= max_messages):
            yield batch
            batch, batch_bytes = [], 0
        batch.append(uid)
        batch_bytes += size
    if batch:
        yield batch


class SourceRun(Generic[F]):
    """One run's work on one account's server; a protocol's run implements two methods and may refine two.

    ``folders()`` (called once, connected): the folders to sync, in order; it may record on the
    catalog what the listing proves (folders gone from the server).

    ``sync_folder(folder, outcome, resumed)``: bring one folder up to date, adding to ``outcome``.
    ``resumed`` is False on the folder's first pass and True when it is synced again (after a
    dropped connection, or :class:`SyncAgain`): the catalog then holds what the committed batches
    added, and the folder is diffed afresh.  It raises a dropped-connection error as it comes (the
    skeleton reconnects), :class:`SyncAgain`, or an :class:`ArchiverError` that fails the folder.
    It saves the folder's sync state only when the folder is complete, and fetches through
    :meth:`fetch_and_store`, which checks the time limit before each batch.

    ``connect()`` opens the session (default: the source's); ``drop_connection()`` forgets a
    session that failed and says whether the failure taught something (default: close it, False).

    ``LOST_CONNECTION_ENDS_RUN``: when reconnecting fails, True ends the run as ``failed`` (every
    later folder needs the same server); False fails only the folder (a maildrop is its run's one folder).
    """

    LOST_CONNECTION_ENDS_RUN = True

    def __init__(
        self, archive: Archive, account: AccountConfig, run_id: int, account_id: int, progress: Progress, source: Source
    ) -> None:
        self.archive = archive
        self.catalog = archive.catalog
        self.account = account
        self.run_id = run_id
        self.account_id = account_id
        self.progress = progress
        self.source = source
        self.clock = RunClock(archive.settings.max_run_time)
        self.source.limits.run_deadline = self.clock.deadline  # no read waits past the run's end
        self.reconnect_attempts = archive.settings.reconnect_attempts
        self.throttle = ThrottleBackoff(archive.settings.throttle_patience, self.clock, account.name, account.provider)
        self._storer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storer")

    # -- what a protocol's run provides ------------------------------------------------------------------
    def folders(self) -> Sequence[F]:
        raise NotImplementedError

    def sync_folder(self, folder: F, outcome: FolderOutcome, resumed: bool) -> None:
        raise NotImplementedError

    def connect(self) -> None:
        self.source.connect()

    def drop_connection(self) -> bool:
        self.source.close()
        return False

    # -- the skeleton ------------------------------------------------------------------------------------
    def close(self) -> None:
        self._storer.shutdown(wait=True)
        self.source.close()

    def run(self, report: RunReport) -> None:
        """Sync every folder into ``report``; raises only when the run cannot go on (see ``run_account``).

        A server that keeps throttling, or a download quota reached, ends the run ``partial`` at once:
        every further command would be refused as well.
        """
        try:
            folders = self._patiently(self.folders, "listing the folders")
        except ServerLimitReached as exc:
            self._stop_for_limit(report, None, exc)
            return
        for folder in folders:
            if self.clock.expired():
                self._stop_for_time(report, None)
                return
            outcome = FolderOutcome(folder.name)
            report.folders.append(outcome)
            try:
                self._sync_with_reconnects(folder, outcome)
                if outcome.error:  # messages the server did not return or too big: recorded, retried next run
                    report.problems.append(self._problem(outcome.name, outcome.error))
            except RunTimeLimit:
                self._stop_for_time(report, outcome)
                return
            except ServerLimitReached as exc:
                self._stop_for_limit(report, outcome, exc)
                return
            except FATAL_ERRORS as exc:  # the archive cannot take more: every other folder would fail the same way
                outcome.error = str(exc)
                raise
            except ArchiverError as exc:
                if is_dropped(exc) and self.LOST_CONNECTION_ENDS_RUN:  # reconnecting failed: the server is gone
                    outcome.error = str(exc)
                    raise
                self._fail(report, outcome, str(exc))

    def fetch_and_store(
        self,
        record: FolderRecord,
        uidvalidity: int,
        outcome: FolderOutcome,
        batches: Iterable[list[K]],
        fetch: Callable[[list[K]], list[FetchedMessage]],
    ) -> None:
        """Fetch batch after batch and store it: storing batch k overlaps fetching batch k + 1.

        The time limit is checked before each batch: stopping there leaves nothing fetched and
        uncommitted.  On any exception the batch being stored is still recorded.
        """
        with StorePipeline(
            self.archive, self._storer, self.run_id, record, uidvalidity, outcome, self.progress
        ) as pipeline:
            for keys in batches:
                self.clock.check()
                while True:
                    try:
                        messages = fetch(keys)
                    except SyncAgain as again:
                        if again.fetched:
                            pipeline.add(again.fetched)
                        raise
                    except Throttled as exc:
                        if not self.source.connected:  # it hung up: the folder is synced again after the wait
                            raise
                        self.throttle.wait(exc, f"folder {record.name!r}")  # then the same batch again
                        self.clock.check()
                        continue
                    break
                self.throttle.went_through()
                pipeline.add(messages)

    def batches(self, keys: Sequence[K], sizes: dict[K, int]) -> Iterator[list[K]]:
        """``keys`` in fetch batches bounded by the archive's ``batch_bytes`` and ``batch_messages``."""
        settings = self.archive.settings
        return plan_batches(keys, sizes, settings.batch_bytes, settings.batch_messages)

    def _sync_with_reconnects(self, folder: F, outcome: FolderOutcome) -> None:
        """Sync one folder; after a dropped connection reconnect with backoff and sync it again.

        Syncing again is cheap and exact: the folder's state is saved only once it is complete, so
        the catalog diff fetches just the messages no committed batch holds.  A folder whose
        connection keeps dropping without any batch committed in between (or a poisoned message
        isolated, see ``drop_connection``) is given up after ``MAX_DROPS_WITHOUT_PROGRESS`` drops.
        """
        drops_without_progress = 0
        resumed = False
        while True:
            committed = outcome.new
            try:
                if not self.source.connected:  # the last folder's failure or a SyncAgain closed it
                    self.connect()
                self.sync_folder(folder, outcome, resumed)
                self.throttle.went_through()
                return
            except SyncAgain:
                resumed = True
                continue
            except Throttled as exc:  # a throttled STATUS, SEARCH, header look, or a hang-up: the folder again
                self.throttle.wait(exc, f"folder {folder.name!r}")
                resumed = True
                continue
            except ArchiverError as exc:
                if not is_dropped(exc):
                    raise
                cause = exc
            resumed = True
            learned = self.drop_connection()
            self.clock.check()  # a read cut short by the run's end is that, not a reason to reconnect
            drops_without_progress = 0 if learned or outcome.new > committed else drops_without_progress + 1
            context = f"folder {folder.name!r}"
            if drops_without_progress > MAX_DROPS_WITHOUT_PROGRESS:
                raise ConnectError(
                    f"{self.source.where}: {context}: the connection dropped {drops_without_progress} times in a row "
                    f"without any progress (last: {cause}); the next run tries again"
                )
            try:
                reconnect(self.connect, self.source.where, cause, self.reconnect_attempts, self.clock, context)
            except Throttled as exc:  # the server is back but turns us away for now: wait, then connect again
                self.throttle.wait(exc, context)

    def _patiently(self, step: Callable[[], T], context: str) -> T:
        """``step()`` on a connected session, asked again after each throttled answer (connecting is part of it)."""
        while True:
            try:
                if not self.source.connected:
                    self.connect()
                result = step()
            except Throttled as exc:
                self.throttle.wait(exc, context)
                continue
            self.throttle.went_through()
            return result

    def _problem(self, folder: str, message: str) -> str:
        return f"{self.account.name}: folder {folder!r}: {message}"

    def _stop_for_time(self, report: RunReport, outcome: FolderOutcome | None) -> None:
        """End the run early: everything fetched so far is committed; the next run goes on from there."""
        message = self.clock.problem(self.account.name)
        if outcome is not None:
            outcome.error = "stopped after the run time limit"
        report.problems.append(message)
        self.catalog.record_error(self.run_id, None if outcome is None else outcome.name, message)
        log.warning("%s", message)

    def _stop_for_limit(self, report: RunReport, outcome: FolderOutcome | None, exc: ServerLimitReached) -> None:
        """End the run at a server's limit: what is committed stays, the folder keeps its old state, ``partial``."""
        message = self.throttle.gave_up(exc) if isinstance(exc, Throttled) else str(exc)
        if outcome is not None:
            outcome.error = "stopped: the server's limit was reached"
        report.problems.append(message)
        self.catalog.record_error(self.run_id, None if outcome is None else outcome.name, message)
        log.warning("%s", message)

    def _fail(self, report: RunReport, outcome: FolderOutcome, message: str) -> None:
        outcome.error = message
        report.problems.append(self._problem(outcome.name, message))
        self.catalog.record_error(self.run_id, outcome.name, message)
        log.error("folder %r failed: %s", outcome.name, message)


RunFactory = Callable[[Archive, AccountConfig, int, int, Progress], SourceRun]


def run_account(
    config: Config,
    account: AccountConfig,
    source_run: RunFactory | None,
    progress: Progress | None = None,
    archive: Archive | None = None,
    index: bool = True,
) -> RunReport:
    """Back up one account with ``source_run`` (None: its protocol is not supported); see ``run_backup``."""
    own_archive = archive is None
    archive = archive or Archive(config.archive)
    progress = progress or Progress()
    report = RunReport(account.name)
    started = time.monotonic()
    try:
        with archive.account_lock(account.name):
            archive.store.sweep_temp_of_dead()
            account_id = archive.catalog.ensure_account(account.name, account.protocol)
            report.run_id = archive.catalog.start_run(account_id)
            _run_source(archive, account, account_id, source_run, report, progress)
            if index and not report.archive_failed:  # a run on its own (the daemon, the web UI)
                outcome = update_search_index(archive, report.run_id, config.index.memory_mb)
                if outcome.error is None and outcome.indexed:
                    compact_quietly(archive, config.index.memory_mb, COMPACT_SECONDS)
                # Either failing leaves the mail safe, but unsearchable or not offsite yet: not a plain success.
                for problem in (outcome.error, snapshot_after_run(archive)):
                    if problem:
                        report.problems.append(problem)
                        report.status = "partial" if report.status == "ok" else report.status
            run = archive.catalog.run(report.run_id)
            report.messages_new = run["messages_new"]
            report.blobs_new = run["blobs_new"]
            report.bytes_fetched = run["bytes_fetched"]
            report.bytes_stored = run["bytes_stored"]
    finally:
        report.seconds = time.monotonic() - started
        if own_archive:
            archive.close()
    return report


def _run_source(
    archive: Archive,
    account: AccountConfig,
    account_id: int,
    source_run: RunFactory | None,
    report: RunReport,
    progress: Progress,
) -> None:
    catalog = archive.catalog
    if source_run is None:
        message = f"{account.name}: backing up protocol {account.protocol!r} is not supported yet"
        report.problems.append(message)
        catalog.record_error(report.run_id, None, message)
        report.status = "failed"
        catalog.finish_run(report.run_id, report.status, 0, 0, 0)
        return
    runner = source_run(archive, account, report.run_id, account_id, progress)
    try:
        runner.run(report)
    except ArchiverError as exc:  # the run stopped: no connection after retries, disk full, catalog failing
        report.problems.append(str(exc))
        record_quietly(catalog, report.run_id, None, str(exc))
        report.status = "failed"
        report.archive_failed = isinstance(exc, FATAL_ERRORS)
    finally:
        runner.close()
    failed = sum(1 for f in report.folders if f.error)
    if report.status != "failed":
        report.status = "partial" if failed or report.problems else "ok"
    unchanged = sum(1 for f in report.folders if f.unchanged)
    try:
        catalog.finish_run(report.run_id, report.status, len(report.folders), unchanged, failed)
    except ArchiverError as exc:  # disk full: the next run marks this one interrupted
        log.error("could not record the end of run %s: %s", report.run_id, exc)
    log.info("run %s of %s: %s", report.run_id, account.name, report.status)


__all__ = ["RunFactory", "SourceRun", "SyncAgain", "plan_batches", "run_account"]
