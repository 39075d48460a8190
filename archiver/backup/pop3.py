"""One backup run of one POP3 account: maildrop → blob store → catalog.

A POP3 maildrop is one folder, recorded as ``INBOX`` of the account.  Each
message's placement uses its UIDL as the uid, under the constant UIDVALIDITY
:data:`UIDL_UIDVALIDITY` (0); on a server without UIDL the uid is a fingerprint
(``fp:`` + hash of the ``TOP n 0`` header block and the LIST size) under
:data:`FINGERPRINT_UIDVALIDITY` (1), so the two id schemes never mix.

A run lists the maildrop (LIST + UIDL), marks placements whose key the server
no longer lists as gone, and fetches only the keys the catalog lacks, batch by
batch in the order of :mod:`archiver.backup.runner`: blobs fsynced under their final
names, then the catalog transaction.  A run killed at any instant therefore
resumes where its last committed batch ended and downloads nothing twice.
Nothing on the server changes: see :mod:`archiver.sources.pop3`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence, Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from archiver.archive import Archive
from archiver.backup.faults import (
    MAX_DROPS_WITHOUT_PROGRESS,
    RunClock,
    RunTimeLimit,
    is_dropped,
    oversized,
    reconnect,
    too_big_message,
)
from archiver.backup.pipeline import StorePipeline
from archiver.backup.runner import FolderOutcome, Progress, RunReport, plan_batches
from archiver.catalog import FolderRecord
from archiver.config import AccountConfig
from archiver.errors import ArchiverError, ConnectError, ProtocolError
from archiver.sources.model import FetchedMessage
from archiver.sources.pop3 import MaildropEntry, MessageTooLarge, Pop3Source, delivery_date
from archiver.sources.sasl import account_tokens

log = logging.getLogger("archiver.backup")

FOLDER = "INBOX"
UIDL_UIDVALIDITY = 0
FINGERPRINT_UIDVALIDITY = 1
NO_UIDL_NOTE = (
    "the server offers no UIDL: messages are identified by a fingerprint of their headers (TOP n 0) and size, "
    "one extra round trip per message and run"
)


@dataclass
class Pop3FolderOutcome(FolderOutcome):
    """A folder outcome that can carry a note: something the user should know that is not a failure."""

    note: str | None = None


def maildrop_changes(
    entries: Sequence[MaildropEntry], present: Set[int | str]
) -> tuple[list[MaildropEntry], set[int | str]]:
    """(messages to fetch, in maildrop order; archived keys the server no longer lists).

    ``present`` holds the keys of the placements the catalog has as still on the server.
    """
    listed = {entry.key for entry in entries}
    return [entry for entry in entries if entry.key not in present], set(present).difference(listed)


class _Relist(Exception):  # a signal inside this module: the session was dropped on purpose, list again
    """A message grew past max_message_bytes mid-read: it is set aside and the maildrop listed on a new session."""


class Pop3Backup:
    """Backs up the maildrop of one POP3 account into the archive (same contract as ``ImapBackup``)."""

    def __init__(
        self,
        archive: Archive,
        account: AccountConfig,
        run_id: int,
        account_id: int,
        progress: Progress,
        source: Pop3Source | None = None,
    ) -> None:
        self.archive = archive
        self.catalog = archive.catalog
        self.account = account
        self.run_id = run_id
        self.account_id = account_id
        self.progress = progress
        self.source = source or Pop3Source(
            account,
            max_message_bytes=archive.settings.max_message_bytes,
            tokens=account_tokens(account, archive.root),
        )
        self._storer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storer")
        self.clock = RunClock(archive.settings.max_run_time)
        self.source.limits.run_deadline = self.clock.deadline  # no read waits past the run's end
        self._too_big: dict[str, int] = {}  # key → size of messages skipped for max_message_bytes

    def close(self) -> None:
        self._storer.shutdown(wait=True)
        self.source.close()

    def run(self, report: RunReport) -> None:
        self.source.connect()
        outcome = Pop3FolderOutcome(FOLDER)
        report.folders.append(outcome)
        try:
            self._sync_with_reconnects(outcome)
            if outcome.error:  # messages refused or too big: recorded, retried next run
                report.problems.append(f"{self.account.name}: {outcome.error}")
        except RunTimeLimit:
            message = self.clock.problem(self.account.name)
            outcome.error = "stopped after the run time limit"
            report.problems.append(message)
            self.catalog.record_error(self.run_id, FOLDER, message)
            log.warning("%s", message)
        except ArchiverError as exc:  # recorded on the run; the runner's caller finishes it as partial
            if isinstance(exc, ConnectError):
                self.source.abandon()
            outcome.error = str(exc)
            report.problems.append(f"{self.account.name}: {exc}")
            self.catalog.record_error(self.run_id, FOLDER, str(exc))
            log.error("%s: POP3 backup failed: %s", self.account.name, exc)

    def _sync_with_reconnects(self, outcome: Pop3FolderOutcome) -> None:
        """As ``ImapBackup``: after a dropped connection, reconnect with backoff and list the maildrop again.

        Message numbers are per session, so the new session's listing is diffed against the catalog
        afresh; only keys no committed batch holds are fetched.  Gives up after
        ``MAX_DROPS_WITHOUT_PROGRESS`` drops in a row without a committed batch.
        """
        attempts = self.archive.settings.reconnect_attempts
        drops_without_progress = 0
        while True:
            committed = outcome.new
            try:
                if not self.source.connected:  # hung up on a message that grew too big: list again
                    self.source.connect()
                self._sync(outcome)
                return
            except _Relist:
                continue
            except ArchiverError as exc:
                if not is_dropped(exc):
                    raise
                cause = exc
            self.source.abandon()
            self.clock.check()  # a read cut short by the run's end is that, not a reason to reconnect
            drops_without_progress = 0 if outcome.new > committed else drops_without_progress + 1
            if drops_without_progress > MAX_DROPS_WITHOUT_PROGRESS:
                raise cause
            reconnect(self.source.connect, self.source.where, cause, attempts, self.clock, "maildrop")

    def _sync(self, outcome: Pop3FolderOutcome) -> None:
        record = self.catalog.folder(self.account_id, FOLDER)
        if record is None or record.gone_since_run is not None:
            record = self.catalog.ensure_folder(self.account_id, FOLDER, None, None, self.run_id)
        entries = self.source.listing()
        if self.source.has_uidl:
            uidvalidity = UIDL_UIDVALIDITY
        else:
            uidvalidity = FINGERPRINT_UIDVALIDITY
            outcome.note = NO_UIDL_NOTE
            log.warning("%s: %s", self.account.name, NO_UIDL_NOTE)
        if record.uidvalidity is not None and record.uidvalidity != uidvalidity:
            log.warning("%s: the server's message ids changed scheme; re-listing the maildrop", self.account.name)
            outcome.gone += self.catalog.mark_placements_gone(self.run_id, record.id, record.uidvalidity, None)
        missing, gone = maildrop_changes(entries, self.catalog.present_uids(record.id, uidvalidity))
        if gone:
            outcome.gone += self.catalog.mark_placements_gone(self.run_id, record.id, uidvalidity, gone)
        outcome.unchanged = not missing and not gone
        limit = self.archive.settings.max_message_bytes
        self._too_big |= oversized({e.key: e.size for e in missing}, (e.key for e in missing), limit)
        failed = self._fetch_missing(record, uidvalidity, [e for e in missing if e.key not in self._too_big], outcome)
        if self._too_big:
            message = too_big_message(self._too_big, limit)
            outcome.error = message
            self.catalog.record_error(self.run_id, FOLDER, message)
            log.warning("%s: %s", self.account.name, message)
        if failed:
            message = f"the server refused {len(failed)} message(s) ({', '.join(failed[:5])}); retried next run"
            outcome.error = message
            self.catalog.record_error(self.run_id, FOLDER, message)
            return
        self.catalog.save_folder_state(record.id, uidvalidity, None, None, len(entries), self.run_id)

    def _fetch_missing(
        self, record: FolderRecord, uidvalidity: int, missing: list[MaildropEntry], outcome: Pop3FolderOutcome
    ) -> list[str]:
        """Fetch, store and record ``missing`` batch by batch; storing batch k overlaps fetching batch k + 1.

        Returns the keys of messages the server answered ``-ERR`` for (say, expunged by an IMAP client
        during the session): the rest of the run goes on without them.
        """
        failed: list[str] = []
        if not missing:
            return failed
        by_number = {entry.number: entry for entry in missing}
        sizes = {entry.number: entry.size for entry in missing}
        settings = self.archive.settings
        self.progress.folder(record.name, len(missing), sum(sizes.values()))
        with StorePipeline(
            self.archive, self._storer, self.run_id, record, uidvalidity, outcome, self.progress
        ) as pipeline:
            for numbers in plan_batches(list(by_number), sizes, settings.batch_bytes, settings.batch_messages):
                self.clock.check()  # between batches: stopping here leaves nothing fetched and uncommitted
                messages = []
                for number in numbers:
                    entry = by_number[number]
                    try:
                        messages.append(self._fetch(entry))
                    except MessageTooLarge:  # the session is out of step: list again on a new one, without it
                        self._too_big[entry.key] = self.archive.settings.max_message_bytes + 1
                        pipeline.add(messages)
                        raise _Relist from None
                    except ProtocolError as exc:
                        log.warning("%s: %s", self.account.name, exc)
                        failed.append(entry.key)
                pipeline.add(messages)
        return failed

    def _fetch(self, entry: MaildropEntry) -> FetchedMessage:
        raw = self.source.fetch(entry)
        return FetchedMessage(uid=entry.key, raw=raw, flags=(), internaldate=delivery_date(raw), size=len(raw))


__all__ = ["FINGERPRINT_UIDVALIDITY", "UIDL_UIDVALIDITY", "Pop3Backup", "Pop3FolderOutcome", "maildrop_changes"]
