"""One backup run of one POP3 account: maildrop → blob store → catalog.

A POP3 maildrop is one folder, recorded as ``INBOX`` of the account.  Each
message's placement uses its UIDL as the uid, under the constant UIDVALIDITY
:data:`UIDL_UIDVALIDITY` (0); on a server without UIDL the uid is a fingerprint
(``fp:`` + hash of the ``TOP n 0`` header block and the LIST size) under
:data:`FINGERPRINT_UIDVALIDITY` (1), so the two id schemes never mix.

A run lists the maildrop (LIST + UIDL), marks placements whose key the server
no longer lists as gone, and fetches only the keys the catalog lacks, batch by
batch through the run's skeleton (:class:`archiver.backup.runner.SourceRun`, which
also reconnects and keeps the time limit): blobs fsynced under their final names,
then the catalog transaction.  A run killed at any instant therefore
resumes where its last committed batch ended and downloads nothing twice.
Nothing on the server changes: see :mod:`archiver.sources.pop3`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence, Set

from archiver.archive import Archive
from archiver.backup.faults import oversized, too_big_message
from archiver.backup.report import FolderOutcome
from archiver.backup.runner import SourceRun, SyncAgain
from archiver.catalog import FolderRecord
from archiver.config import AccountConfig
from archiver.errors import ProtocolError, ServerLimitReached
from archiver.progress import Progress
from archiver.sources.model import FetchedMessage, FolderInfo
from archiver.sources.pop3 import Pop3Source
from archiver.sources.pop3_parse import MaildropEntry, MessageTooLarge, delivery_date
from archiver.sources.sasl import account_tokens

log = logging.getLogger("archiver.backup")

FOLDER = "INBOX"
MAILDROP = FolderInfo(FOLDER, None, (), None)
UIDL_UIDVALIDITY = 0
FINGERPRINT_UIDVALIDITY = 1
NO_UIDL_NOTE = (
    "the server offers no UIDL: messages are identified by a fingerprint of their headers (TOP n 0) and size, "
    "one extra round trip per message and run"
)


def maildrop_changes(
    entries: Sequence[MaildropEntry], present: Set[int | str]
) -> tuple[list[MaildropEntry], set[int | str]]:
    """(messages to fetch, in maildrop order; archived keys the server no longer lists).

    ``present`` holds the keys of the placements the catalog has as still on the server.
    """
    listed = {entry.key for entry in entries}
    return [entry for entry in entries if entry.key not in present], set(present).difference(listed)


class Pop3Backup(SourceRun[FolderInfo]):
    """Backs up the maildrop of one POP3 account into the archive: one folder, ``INBOX``."""

    # Reconnecting failed: the maildrop, the run's one folder, is not complete; the run is "partial".
    LOST_CONNECTION_ENDS_RUN = False

    def __init__(
        self,
        archive: Archive,
        account: AccountConfig,
        run_id: int,
        account_id: int,
        progress: Progress,
        source: Pop3Source | None = None,
    ) -> None:
        source = source or Pop3Source(
            account, max_message_bytes=archive.settings.max_message_bytes, tokens=account_tokens(account, archive.root)
        )
        super().__init__(archive, account, run_id, account_id, progress, source)
        self.source: Pop3Source = source
        self._too_big: dict[str, int] = {}  # key → size of messages skipped for max_message_bytes

    def folders(self) -> Sequence[FolderInfo]:
        return [MAILDROP]

    def drop_connection(self) -> bool:
        """Drop the broken session without a word (no QUIT on a dead connection)."""
        self.source.abandon()
        return False

    def sync_folder(self, folder: FolderInfo, outcome: FolderOutcome, resumed: bool) -> None:
        """List the maildrop and fetch what the catalog lacks.

        Message numbers are per session, so every pass (``resumed`` or not) diffs the new session's
        listing against the catalog afresh: only keys no committed batch holds are fetched.
        """
        record = self.catalog.folder(self.account_id, folder.name)
        if record is None or record.gone_since_run is not None:
            record = self.catalog.ensure_folder(self.account_id, folder.name, None, None, self.run_id)
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
            self.catalog.record_error(self.run_id, folder.name, message)
            log.warning("%s: %s", self.account.name, message)
        if failed:
            message = f"the server refused {len(failed)} message(s) ({', '.join(failed[:5])}); retried next run"
            outcome.error = message
            self.catalog.record_error(self.run_id, folder.name, message)
            return
        self.catalog.save_folder_state(record.id, uidvalidity, None, None, len(entries), self.run_id)

    def _fetch_missing(
        self, record: FolderRecord, uidvalidity: int, missing: list[MaildropEntry], outcome: FolderOutcome
    ) -> list[str]:
        """Fetch, store and record ``missing`` batch by batch.

        Returns the keys of messages the server answered ``-ERR`` for (say, expunged by an IMAP client
        during the session): the rest of the run goes on without them.
        """
        failed: list[str] = []
        if not missing:
            return failed
        by_number = {entry.number: entry for entry in missing}
        sizes = {entry.number: entry.size for entry in missing}
        self.progress.folder(record.name, len(missing), sum(sizes.values()))

        def fetch(numbers: list[int]) -> list[FetchedMessage]:
            messages = []
            for number in numbers:
                entry = by_number[number]
                try:
                    messages.append(self._fetch(entry))
                except MessageTooLarge:  # the session is out of step: list again on a new one, without it
                    self._too_big[entry.key] = self.archive.settings.max_message_bytes + 1
                    raise SyncAgain(messages) from None
                except ServerLimitReached:  # throttled, or a quota: keep what the batch read, then list again
                    if messages:
                        raise SyncAgain(messages) from None
                    raise
                except ProtocolError as exc:
                    log.warning("%s: %s", self.account.name, exc)
                    failed.append(entry.key)
            return messages

        self.fetch_and_store(record, uidvalidity, outcome, self.batches(list(by_number), sizes), fetch)
        return failed

    def _fetch(self, entry: MaildropEntry) -> FetchedMessage:
        raw = self.source.fetch(entry)
        return FetchedMessage(uid=entry.key, raw=raw, flags=(), internaldate=delivery_date(raw), size=len(raw))


__all__ = ["FINGERPRINT_UIDVALIDITY", "UIDL_UIDVALIDITY", "Pop3Backup", "maildrop_changes"]
