"""One backup run of one account: server → blob store → catalog.

Order of durability, batch by batch: the blobs are fsynced under their final
names, then the catalog transaction that records them commits.  A folder's
sync state (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ) is saved only once the whole
folder is done, so a run killed at any instant leaves the folder "changed" and
the next run diffs UID sets and fetches only what the catalog lacks.

Fetching and storing overlap: while batch *k* is hashed, compressed and fsynced
on worker threads, the connection already fetches batch *k + 1*.

Faults (:mod:`archiver.backup.faults`): a connection dropped mid-folder is re-opened with
backoff and the same folder synced again, which fetches only what is not committed;
the run's time limit is checked before each batch; a full disk or a failing
catalog stops the run at once with one problem line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from archiver.archive import Archive
from archiver.backup import remap
from archiver.backup.faults import (
    FATAL_ERRORS,
    MAX_DROPS_WITHOUT_PROGRESS,
    PoisonedMessages,
    RunClock,
    RunTimeLimit,
    is_dropped,
    oversized,
    reconnect,
    too_big_message,
)
from archiver.backup.pipeline import StorePipeline
from archiver.catalog import FolderRecord
from archiver.catalog.labels import record_labels
from archiver.config import AccountConfig, Config
from archiver.errors import ArchiverError, ConnectError, ProtocolError
from archiver.sources import gmail
from archiver.sources.imap import ImapSource, MessageStub, MessageTooLarge
from archiver.sources.model import FolderInfo, FolderStatus
from archiver.sources.sasl import account_tokens

log = logging.getLogger("archiver.backup")
# A folder whose server understates this many message sizes (RFC822.SIZE small, the literal huge) is given up.
MAX_UNDERSTATED_SIZES = 20


class Progress:
    """Receives progress events; the CLI draws a bar, the default does nothing."""

    def folder(self, name: str, messages: int, size: int) -> None:
        pass

    def advance(self, messages: int, size: int) -> None:
        pass


@dataclass
class FolderOutcome:
    name: str
    unchanged: bool = False
    new: int = 0
    gone: int = 0
    flags_changed: int = 0
    adopted: int = 0  # new UIDs recognised as archived messages (no body fetched): archiver.sync
    stub_bytes: int = 0  # header bytes fetched to recognise them (Message-ID lines; whole headers without one)
    error: str | None = None


@dataclass
class RunReport:
    """What a run did; ``problems`` holds one user-facing line per failure."""

    account: str
    run_id: int | None = None
    status: str = "running"
    folders: list[FolderOutcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    messages_new: int = 0
    blobs_new: int = 0
    bytes_fetched: int = 0
    bytes_stored: int = 0
    seconds: float = 0.0
    # The run stopped because the archive could not take writes (disk full, catalog failing): the index
    # update, which writes to the same disk, is skipped rather than reported as a second failure.
    archive_failed: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def plan_batches(uids: Sequence[int], sizes: dict[int, int], max_bytes: int, max_messages: int) -> Iterator[list[int]]:
    """Group UIDs into fetch batches bounded by bytes and count (a huge message goes alone)."""
    batch: list[int] = []
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


def folder_unchanged(record: FolderRecord, status: FolderStatus) -> bool:
    """True when STATUS proves nothing changed since the folder was last fully synced.

    Only with HIGHESTMODSEQ (CONDSTORE): without it a flag change leaves STATUS as it was, so such a
    folder is always examined and its flags fetched (one cheap ``UID FETCH 1:* (FLAGS)``).
    """
    return (
        record.uidvalidity == status.uidvalidity
        and record.uidnext == status.uidnext
        and record.server_messages == status.messages
        and record.highestmodseq == status.highestmodseq
        and status.uidnext is not None
        and status.highestmodseq is not None
    )


class ImapBackup:
    """Syncs every selected folder of one IMAP account into the archive."""

    def __init__(
        self, archive: Archive, account: AccountConfig, run_id: int, account_id: int, progress: Progress
    ) -> None:
        self.archive = archive
        self.catalog = archive.catalog
        self.account = account
        self.run_id = run_id
        self.account_id = account_id
        self.progress = progress
        self.source = ImapSource(
            account,
            max_message_bytes=archive.settings.max_message_bytes,
            spool_dir=archive.store.temp_dir,
            tokens=account_tokens(account, archive.root),
        )
        self._storer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storer")
        # QRESYNC (VANISHED) when offered; False forces the UID-set comparison (tests cover both paths).
        self.use_qresync = True
        self.clock = RunClock(archive.settings.max_run_time)
        self.source.limits.run_deadline = self.clock.deadline  # no read waits past the run's end
        self.reconnect_attempts = archive.settings.reconnect_attempts
        self._poison = PoisonedMessages()  # per folder
        self._too_big: dict[int, int] = {}  # per folder: UIDs whose body literal came over max_message_bytes

    def close(self) -> None:
        self._storer.shutdown(wait=True)
        self.source.close()

    def run(self, report: RunReport) -> None:
        self._connect()
        folders = [f for f in self.source.list_folders() if self.account.folders.matches(f.name)]
        if self.source.is_gmail:
            folders = gmail.sync_order(folders)
        listed = {f.name for f in folders}
        known = self.catalog.folders(self.account_id)
        vanished = [
            name
            for name, record in known.items()
            if record.gone_since_run is None and name not in listed and self.account.folders.matches(name)
        ]
        if vanished:
            self.catalog.mark_folders_gone(self.account_id, vanished, self.run_id)
            for name in vanished:
                log.info("folder gone from the server: %s", name)
        for info in folders:
            if self.clock.expired():
                self._stop_for_time(report, None)
                return
            outcome = FolderOutcome(info.name)
            report.folders.append(outcome)
            try:
                self._sync_with_reconnects(info, known.get(info.name), outcome)
                if outcome.error:  # messages the server did not return: recorded, retried next run
                    report.problems.append(f"{self.account.name}: folder {info.name!r}: {outcome.error}")
            except RunTimeLimit:
                self._stop_for_time(report, outcome)
                return
            except FATAL_ERRORS as exc:  # the archive cannot take more: every other folder would fail the same way
                outcome.error = str(exc)
                raise
            except ArchiverError as exc:
                if is_dropped(exc):  # reconnecting failed too: the server is gone for this run
                    outcome.error = str(exc)
                    raise
                self._fail(report, outcome, str(exc))

    def _sync_with_reconnects(self, info: FolderInfo, record: FolderRecord | None, outcome: FolderOutcome) -> None:
        """Sync one folder; after a dropped connection reconnect with backoff and sync it again.

        Syncing again is cheap and exact: the folder's state is saved only once it is complete, so
        the catalog diff fetches just the messages no committed batch holds.  A folder whose
        connection keeps dropping without any batch committed in between is given up after
        ``MAX_DROPS_WITHOUT_PROGRESS`` drops; a single message that drops it every time is skipped for
        this run (:class:`PoisonedMessages`).
        """
        self._poison = PoisonedMessages()
        self._too_big = {}
        drops_without_progress = 0
        while True:
            committed = outcome.new
            try:
                if not self.source.connected:  # the last folder's failure closed it (a garbled answer)
                    self._connect()
                self._sync_folder(info, record, outcome)
                return
            except MessageTooLarge as exc:  # RFC822.SIZE said less: set it aside, sync the folder again without it
                self._too_big[exc.uid] = exc.size
                if len(self._too_big) > MAX_UNDERSTATED_SIZES:
                    raise ProtocolError(
                        f"{self.source.where}: folder {info.name!r}: the server keeps sending messages far bigger "
                        f"than their RFC822.SIZE ({len(self._too_big)} so far); giving up on the folder"
                    ) from None
                record = self.catalog.folders(self.account_id).get(info.name)
                continue
            except ArchiverError as exc:
                if not is_dropped(exc):
                    raise
                cause = exc
            self.source.close()
            self.clock.check()  # a read cut short by the run's end is that, not a reason to reconnect
            record = self.catalog.folder(self.account_id, info.name)  # as the committed batches left it
            isolated = self._poison.dropped()
            drops_without_progress = 0 if isolated or outcome.new > committed else drops_without_progress + 1
            context = f"folder {info.name!r}"
            if drops_without_progress > MAX_DROPS_WITHOUT_PROGRESS:
                raise ConnectError(
                    f"{self.source.where}: {context}: the connection dropped {drops_without_progress} times in a row "
                    f"without any progress (last: {cause}); the next run tries again"
                )
            reconnect(self._connect, self.source.where, cause, self.reconnect_attempts, self.clock, context)

    def _stop_for_time(self, report: RunReport, outcome: FolderOutcome | None) -> None:
        """End the run early: everything fetched so far is committed; the next run goes on from there."""
        message = self.clock.problem(self.account.name)
        if outcome is not None:
            outcome.error = "stopped after the run time limit"
        report.problems.append(message)
        self.catalog.record_error(self.run_id, None if outcome is None else outcome.name, message)
        log.warning("%s", message)

    def _connect(self) -> None:
        self.source.connect()
        if self.use_qresync:
            self.source.enable_qresync()

    def _fail(self, report: RunReport, outcome: FolderOutcome, message: str) -> None:
        outcome.error = message
        report.problems.append(f"{self.account.name}: folder {outcome.name!r}: {message}")
        self.catalog.record_error(self.run_id, outcome.name, message)
        log.error("folder %r failed: %s", outcome.name, message)

    def _sync_folder(self, info: FolderInfo, record: FolderRecord | None, outcome: FolderOutcome) -> None:
        if record is None or record.gone_since_run is not None:
            record = self.catalog.ensure_folder(
                self.account_id, info.name, info.delimiter, info.special_use, self.run_id
            )
        status = self.source.status(info.name)
        if folder_unchanged(record, status):
            outcome.unchanged = True
            return
        self.source.forget_vanished()
        status = self.source.examine(info.name)
        uidvalidity = status.uidvalidity
        same_uidvalidity = record.uidvalidity == uidvalidity
        if record.uidvalidity is not None and not same_uidvalidity:
            # The old placements stay, gone since this run (their history is kept); the new UIDs are
            # re-mapped onto the same blobs by fingerprint below, so only unmatched bodies are fetched.
            log.warning("%s: UIDVALIDITY changed %s -> %s", info.name, record.uidvalidity, uidvalidity)
            outcome.gone += self.catalog.mark_placements_gone(self.run_id, record.id, record.uidvalidity, None)
        present = self.catalog.present_uids(record.id, uidvalidity)
        changes = None
        if same_uidvalidity and record.highestmodseq and record.uidnext and self._qresync_ready():
            try:
                changes = self._changes_by_qresync(record, present)
            except ProtocolError as exc:  # a server that announces QRESYNC but balks: compare UID sets instead
                log.warning("%s: QRESYNC failed (%s); comparing UID sets", info.name, exc)
        gone, flags, missing = changes or self._changes_by_uid_sets(record, present, same_uidvalidity)
        if gone:
            outcome.gone += self.catalog.mark_placements_gone(self.run_id, record.id, uidvalidity, gone)
        if flags:
            outcome.flags_changed += self.catalog.update_flags(self.run_id, record.id, uidvalidity, flags)
            if self.source.is_gmail:
                labels = self.source.gmail_labels(sorted(flags))
                record_labels(self.catalog, record.id, uidvalidity, {u: (None, ls) for u, ls in labels.items()})
        missing, stubs = self._adopt_known(record, uidvalidity, missing, outcome)
        skipped = sorted(self._poison.skipped.intersection(missing))  # they dropped the connection: not again
        missing = [uid for uid in missing if uid not in skipped]
        failed_uids = skipped + self._fetch_missing(record, uidvalidity, missing, outcome, stubs)
        if stubs and self.source.is_gmail:
            record_labels(
                self.catalog,
                record.id,
                uidvalidity,
                {uid: (s.gm_msgid, s.gm_labels or ()) for uid, s in stubs.items()},
            )
        if failed_uids:
            message = (
                f"the server did not return {len(failed_uids)} message(s) (UIDs {failed_uids[:10]}); retried next run"
            )
            outcome.error = f"{outcome.error}; {message}" if outcome.error else message
            self.catalog.record_error(self.run_id, info.name, message)
            return
        if outcome.error:  # messages over max_message_bytes were skipped: the folder is not complete
            return
        self.catalog.save_folder_state(
            record.id, uidvalidity, status.uidnext, status.highestmodseq, status.messages, self.run_id
        )

    def _qresync_ready(self) -> bool:
        return self.use_qresync and self.source.has_qresync

    def _changes_by_qresync(
        self, record: FolderRecord, present: set
    ) -> tuple[set, dict[int, tuple[str, ...]], list[int]]:
        """(gone UIDs, changed flags, UIDs to get) from one CHANGEDSINCE/VANISHED fetch and a search past UIDNEXT.

        Valid because the folder's state is saved only after a complete sync: every UID below the saved
        UIDNEXT was then in the catalog.
        """
        changes = self.source.changes_since(record.highestmodseq, present)
        gone = present.intersection(changes.vanished)
        if gone:  # confirm: a stray VANISHED (another folder's, a racing SELECT) must never mark mail gone
            gone -= self.source.existing_uids(gone)
        flags = {uid: f for uid, f in changes.flags.items() if uid in present and uid not in gone}
        missing = [uid for uid in self.source.uids_from(record.uidnext) if uid not in present]
        return gone, flags, missing

    def _changes_by_uid_sets(
        self, record: FolderRecord, present: set, same_uidvalidity: bool
    ) -> tuple[set, dict[int, tuple[str, ...]], list[int]]:
        """The fallback: UID SEARCH ALL against the catalog, flags by CHANGEDSINCE (or all of them)."""
        server_uids = self.source.all_uids()
        gone = present.difference(server_uids)
        still = present.intersection(server_uids)
        flags: dict[int, tuple[str, ...]] = {}
        if still:
            since = record.highestmodseq if same_uidvalidity else None
            flags = self.source.flags(sorted(still), changed_since=since)
            flags = {uid: f for uid, f in flags.items() if uid in still}
        return gone, flags, [uid for uid in server_uids if uid not in present]

    def _adopt_known(
        self, record: FolderRecord, uidvalidity: int, missing: list[int], outcome: FolderOutcome
    ) -> tuple[list[int], dict[int, MessageStub]]:
        """Record new UIDs that are messages already archived (X-GM-MSGID or fingerprint); return the rest."""
        if self._poison.skip_stubs:  # the header look keeps dropping the connection: fetch bodies instead
            return missing, {}
        self._poison.fetching_stubs()
        result = remap.adopt_known(
            self.source, self.catalog, self.archive.store, self.account_id, self.run_id, record, uidvalidity, missing
        )
        self._poison.fetched()
        outcome.new += result.added
        outcome.adopted += result.added
        outcome.stub_bytes += result.stub_bytes
        return result.remaining, result.stubs

    def _fetch_missing(
        self,
        record: FolderRecord,
        uidvalidity: int,
        missing: list[int],
        outcome: FolderOutcome,
        stubs: dict[int, MessageStub],
    ) -> list[int]:
        if not missing:
            return []
        sizes = {uid: stubs[uid].size for uid in missing if uid in stubs}  # the header look already had them
        unsized = [uid for uid in missing if uid not in sizes]
        if unsized:
            sizes |= self.source.sizes(unsized)
        too_big = oversized(sizes, missing, self.archive.settings.max_message_bytes)
        too_big |= {uid: size for uid, size in self._too_big.items() if uid in missing}
        if too_big:
            message = too_big_message(too_big, self.archive.settings.max_message_bytes)
            outcome.error = message
            self.catalog.record_error(self.run_id, record.name, message)
            log.warning("%s: folder %r: %s", self.account.name, record.name, message)
            missing = [uid for uid in missing if uid not in too_big]
        settings = self.archive.settings
        self.progress.folder(record.name, len(missing), sum(sizes.values()))
        failed: list[int] = []
        with StorePipeline(
            self.archive, self._storer, self.run_id, record, uidvalidity, outcome, self.progress
        ) as pipeline:
            batches = plan_batches(missing, sizes, settings.batch_bytes, settings.batch_messages)
            for uids in self._poison.split(batches):
                self.clock.check()  # between batches: stopping here leaves nothing fetched and uncommitted
                self._poison.fetching(uids)
                messages, not_returned = self.source.fetch(uids)
                self._poison.fetched()
                failed.extend(not_returned)
                pipeline.add(messages)
        return failed


def run_backup(
    config: Config,
    account: AccountConfig,
    progress: Progress | None = None,
    archive: Archive | None = None,
    index: bool = True,
) -> RunReport:
    """Back up one account; never raises for server problems, they land in the report.

    With ``index=False`` the search index is left for the caller (the CLI indexes once after
    several accounts) or the next run: it bookmarks the catalog state it reflects, so nothing is missed.
    """
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
            _execute(archive, account, account_id, report, progress)
            if index and not report.archive_failed:
                outcome = update_search_index(archive, report.run_id, config.index.memory_mb)
                if outcome.error:  # the mail is safe, but not searchable: not a plain success
                    report.problems.append(outcome.error)
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


@dataclass(frozen=True)
class IndexOutcome:
    """What the index update after a backup did: ``error`` is one line when it failed (the mail is safe)."""

    indexed: int = 0
    problems: int = 0  # messages indexed only in part (their reasons are in the catalog's index_problems)
    error: str | None = None


def update_search_index(archive: Archive, run_id: int, memory_mb: int | None = None) -> IndexOutcome:
    """Index what the run committed (blob → catalog → index); a failure never fails the backup's data.

    The index bookmarks the catalog state it reflects, so whatever is not
    indexed now is indexed by the next run or ``archiver reindex``.  ``memory_mb``
    is the ``[index] memory_mb`` budget for the whole process tree (None: the default).
    A failure is logged, recorded on the run and returned, for the caller to report it
    as the problem it is (a backup whose mail cannot be searched is not plainly ``ok``).
    """
    try:
        from archiver.index.hint import up_to_date

        if up_to_date(archive.root, archive.catalog):  # nothing to index: Whoosh is not even imported
            return IndexOutcome()
        from archiver.index import update_index

        report = update_index(archive) if memory_mb is None else update_index(archive, memory_mb=memory_mb)
        return IndexOutcome(report.indexed + report.refreshed, report.problems)
    except Exception as exc:
        error = f"search index not updated (the next run catches up): {' '.join(str(exc).split())[:300]}"
        log.error("%s", error)
        _record_quietly(archive, run_id, None, error)
        return IndexOutcome(error=error)


def _record_quietly(archive: Archive, run_id: int | None, folder: str | None, message: str) -> None:
    """Record an error on the run unless the catalog cannot take it (disk full): then the log has it."""
    if run_id is None:
        return
    try:
        archive.catalog.record_error(run_id, folder, message)
    except ArchiverError as exc:
        log.error("could not record %r on run %s: %s", message, run_id, exc)


def _execute(archive: Archive, account: AccountConfig, account_id: int, report: RunReport, progress: Progress) -> None:
    from archiver.backup.pop3 import Pop3Backup  # here, not at the top: pop3_backup imports this module

    runner_for: dict[str, Callable] = {"imap": ImapBackup, "pop3": Pop3Backup}
    runner_class = runner_for.get(account.protocol)
    catalog = archive.catalog
    if runner_class is None:
        message = f"{account.name}: backing up protocol {account.protocol!r} is not supported yet"
        report.problems.append(message)
        catalog.record_error(report.run_id, None, message)
        report.status = "failed"
        catalog.finish_run(report.run_id, report.status, 0, 0, 0)
        return
    runner = runner_class(archive, account, report.run_id, account_id, progress)
    try:
        runner.run(report)
    except ArchiverError as exc:  # the run stopped: no connection after retries, disk full, catalog failing
        report.problems.append(str(exc))
        _record_quietly(archive, report.run_id, None, str(exc))
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
