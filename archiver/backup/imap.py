"""The IMAP part of a backup run: folder listing, UIDVALIDITY, flags, re-mapping, Gmail labels.

Per folder: ``STATUS`` proves most folders unchanged at no further cost; a
changed one is opened with ``EXAMINE`` (read-only), its expunged UIDs and
changed flags come from QRESYNC when offered (else from a UID-set comparison),
new UIDs that are messages already archived are recorded without their bodies
(:mod:`archiver.backup.remap`), and the rest are fetched through the run's
pipeline (:class:`archiver.backup.runner.SourceRun`), which also reconnects and
keeps the time limit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from archiver.archive import Archive
from archiver.backup import remap
from archiver.backup.faults import PoisonedMessages, oversized, too_big_message
from archiver.backup.report import FolderOutcome
from archiver.backup.runner import SourceRun, SyncAgain
from archiver.catalog import FolderRecord
from archiver.catalog.labels import record_labels
from archiver.config import AccountConfig
from archiver.errors import ProtocolError
from archiver.progress import Progress
from archiver.sources import gmail
from archiver.sources.imap import ImapSource, MessageStub, MessageTooLarge
from archiver.sources.model import FetchedMessage, FolderInfo, FolderStatus
from archiver.sources.sasl import account_tokens

log = logging.getLogger("archiver.backup")
# A folder whose server understates this many message sizes (RFC822.SIZE small, the literal huge) is given up.
MAX_UNDERSTATED_SIZES = 20


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


class ImapBackup(SourceRun[FolderInfo]):
    """Syncs every selected folder of one IMAP account into the archive."""

    def __init__(
        self,
        archive: Archive,
        account: AccountConfig,
        run_id: int,
        account_id: int,
        progress: Progress,
        source: ImapSource | None = None,
    ) -> None:
        source = source or ImapSource(
            account,
            max_message_bytes=archive.settings.max_message_bytes,
            spool_dir=archive.store.temp_dir,
            tokens=account_tokens(account, archive.root),
        )
        super().__init__(archive, account, run_id, account_id, progress, source)
        self.source: ImapSource = source
        # QRESYNC (VANISHED) when offered; False forces the UID-set comparison (tests cover both paths).
        self.use_qresync = True
        self._records: dict[str, FolderRecord | None] = {}  # the listed folders as the run found them
        self._poison = PoisonedMessages()  # per folder
        self._too_big: dict[int, int] = {}  # per folder: UIDs whose body literal came over max_message_bytes

    def connect(self) -> None:
        self.source.connect()
        if self.use_qresync:
            self.source.enable_qresync()

    def drop_connection(self) -> bool:
        """Close the broken session; True when the drop isolated a poisoned message (that is progress)."""
        self.source.close()
        return self._poison.dropped()

    def folders(self) -> Sequence[FolderInfo]:
        """The selected folders (Gmail's in its sync order); folders the server no longer lists are marked gone."""
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
        self._records = {f.name: known.get(f.name) for f in folders}
        return folders

    def sync_folder(self, folder: FolderInfo, outcome: FolderOutcome, resumed: bool) -> None:
        if resumed:  # as the committed batches left it
            record = self.catalog.folder(self.account_id, folder.name)
        else:
            record = self._records.pop(folder.name, None)
            self._poison = PoisonedMessages()
            self._too_big = {}
        if record is None or record.gone_since_run is not None:
            record = self.catalog.ensure_folder(
                self.account_id, folder.name, folder.delimiter, folder.special_use, self.run_id
            )
        status = self.source.status(folder.name)
        if folder_unchanged(record, status):
            outcome.unchanged = True
            return
        self.source.forget_vanished()
        status = self.source.examine(folder.name)
        uidvalidity = status.uidvalidity
        same_uidvalidity = record.uidvalidity == uidvalidity
        if record.uidvalidity is not None and not same_uidvalidity:
            # The old placements stay, gone since this run (their history is kept); the new UIDs are
            # re-mapped onto the same blobs by fingerprint below, so only unmatched bodies are fetched.
            log.warning("%s: UIDVALIDITY changed %s -> %s", folder.name, record.uidvalidity, uidvalidity)
            outcome.gone += self.catalog.mark_placements_gone(self.run_id, record.id, record.uidvalidity, None)
        present = self.catalog.present_uids(record.id, uidvalidity)
        changes = None
        if same_uidvalidity and record.highestmodseq and record.uidnext and self._qresync_ready():
            try:
                changes = self._changes_by_qresync(record, present)
            except ProtocolError as exc:  # a server that announces QRESYNC but balks: compare UID sets instead
                log.warning("%s: QRESYNC failed (%s); comparing UID sets", folder.name, exc)
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
            self.catalog.record_error(self.run_id, folder.name, message)
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
        """Fetch, store and record ``missing``; returns the UIDs the server did not return."""
        if not missing:
            return []
        sizes = {uid: stubs[uid].size for uid in missing if uid in stubs}  # the header look already had them
        unsized = [uid for uid in missing if uid not in sizes]
        if unsized:
            sizes |= self.source.sizes(unsized)
        limit = self.archive.settings.max_message_bytes
        too_big = oversized(sizes, missing, limit)
        too_big |= {uid: size for uid, size in self._too_big.items() if uid in missing}
        if too_big:
            message = too_big_message(too_big, limit)
            outcome.error = message
            self.catalog.record_error(self.run_id, record.name, message)
            log.warning("%s: folder %r: %s", self.account.name, record.name, message)
            missing = [uid for uid in missing if uid not in too_big]
        self.progress.folder(record.name, len(missing), sum(sizes.values()))
        failed: list[int] = []

        def fetch(uids: list[int]) -> list[FetchedMessage]:
            self._poison.fetching(uids)
            try:
                messages, not_returned = self.source.fetch(uids)
            except MessageTooLarge as exc:  # RFC822.SIZE said less: set it aside, sync the folder again without it
                self._set_aside(record.name, exc.uid, exc.size)
                raise SyncAgain from None
            self._poison.fetched()
            failed.extend(not_returned)
            return messages

        self.fetch_and_store(record, uidvalidity, outcome, self._poison.split(self.batches(missing, sizes)), fetch)
        return failed

    def _set_aside(self, folder: str, uid: int, size: int) -> None:
        self._too_big[uid] = size
        if len(self._too_big) > MAX_UNDERSTATED_SIZES:
            raise ProtocolError(
                f"{self.source.where}: folder {folder!r}: the server keeps sending messages far bigger "
                f"than their RFC822.SIZE ({len(self._too_big)} so far); giving up on the folder"
            )


__all__ = ["ImapBackup", "folder_unchanged"]
