"""Placements: which blob sits at (folder, UIDVALIDITY, UID), with which flags, since and until which run.

A placement is never deleted: an expunged message gets ``gone_since_run``, a UID
seen again is revived by the upsert, and a change of flags goes into the flag
history (:mod:`archiver.catalog.history`) in the same transaction.  So the
catalog can say what any folder held after any run (:meth:`placements_as_of`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence

from archiver.catalog.connection import CatalogConnection, select_in
from archiver.catalog.history import FLAGS_AS_OF_SQL, as_of_filter, record_flag_changes, record_revived_flag_changes
from archiver.catalog.model import (
    Adoption,
    KnownCopyRow,
    NewPlacement,
    PlacementRow,
    RunTotals,
    decode_flags,
    encode_flags,
)
from archiver.times import utc_now

# A placement seen again (a killed run's upsert, a message back under the same UID) is revived, not duplicated.
# Parameters: folder_id, uidvalidity, uid, blob_id, flags, internaldate, size, first_seen_run.
UPSERT_PLACEMENT_SQL = (
    "INSERT INTO placements (folder_id, uidvalidity, uid, blob_id, flags, internaldate, size, first_seen_run) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (folder_id, uidvalidity, uid) DO UPDATE SET gone_since_run = NULL, flags = excluded.flags"
)

# The columns of a PlacementRow, over placements p, folders f and messages m; {flags} is p.flags or its as-of.
_PLACEMENT_SELECT = (
    "SELECT f.name AS folder, f.delimiter, p.id, p.uidvalidity, p.uid, p.blob_id, {flags}, p.internaldate, "
    "p.size, p.first_seen_run, p.gone_since_run, m.message_id, m.subject, m.sender, m.date "
    "FROM placements p JOIN folders f ON f.id = p.folder_id JOIN messages m ON m.blob_id = p.blob_id "
)
_RESTORE_SELECT = _PLACEMENT_SELECT.format(flags="p.flags")


class PlacementQueries(CatalogConnection):
    """Writing placements (and their messages rows) during a backup, and reading them back."""

    def present_uids(self, folder_id: int, uidvalidity: int) -> set[int | str]:
        """UIDs of the folder's messages that were on the server at the last look."""
        rows = self.db.execute(
            "SELECT uid FROM placements WHERE folder_id = ? AND uidvalidity = ? AND gone_since_run IS NULL",
            (folder_id, uidvalidity),
        )
        return {row[0] for row in rows}

    def add_placements(self, run_id: int, folder_id: int, uidvalidity: int, batch: Sequence[NewPlacement]) -> RunTotals:
        """Record a batch whose blobs are already durable, in one transaction.

        Returns what the batch added, which is also added to the run's counters.
        """
        now = utc_now().isoformat()
        new_blobs = 0
        new_placements = 0
        stored = 0
        with self.transaction():
            # A UID that is already there (a placement marked gone by mistake, a POP3 key back in the
            # maildrop) is revived by the upsert below: a change of its flags goes into their history first.
            record_revived_flag_changes(
                self.db, run_id, folder_id, uidvalidity, {i.uid: encode_flags(i.flags) for i in batch}
            )
            for item in batch:
                h = item.headers
                cursor = self.db.execute(
                    "INSERT OR IGNORE INTO messages (blob_id, size, stored_size, message_id, date, sender, "
                    "recipients, subject, first_seen_run, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        item.blob_id,
                        item.size,
                        item.stored_size,
                        h.message_id,
                        h.date,
                        h.sender,
                        h.recipients,
                        h.subject,
                        run_id,
                        now,
                    ),
                )
                if cursor.rowcount:
                    new_blobs += 1
                    stored += item.stored_size
                new_placements += self._upsert_placement(run_id, folder_id, uidvalidity, item)
            fetched = sum(item.size for item in batch)
            self.db.execute(
                "UPDATE runs SET messages_new = messages_new + ?, blobs_new = blobs_new + ?, "
                "bytes_fetched = bytes_fetched + ?, bytes_stored = bytes_stored + ? WHERE id = ?",
                (new_placements, new_blobs, fetched, stored, run_id),
            )
        return RunTotals(messages_new=new_placements, blobs_new=new_blobs, bytes_fetched=fetched, bytes_stored=stored)

    def _upsert_placement(self, run_id: int, folder_id: int, uidvalidity: int, item: NewPlacement | Adoption) -> int:
        """Record one placement (a fetched message or an adopted one): 1 when it was added, 0 when present."""
        return self.db.execute(
            UPSERT_PLACEMENT_SQL,
            (
                folder_id,
                uidvalidity,
                item.uid,
                item.blob_id,
                encode_flags(item.flags),
                item.internaldate,
                item.size,
                run_id,
            ),
        ).rowcount

    def adopt_placements(self, run_id: int, folder_id: int, uidvalidity: int, adoptions: Sequence[Adoption]) -> int:
        """Record placements of already-archived blobs in one transaction; returns how many were added.

        They count as new messages of the run, with no bytes fetched or stored.
        """
        added = 0
        with self.transaction():
            revived = {item.uid: encode_flags(item.flags) for item in adoptions}
            record_revived_flag_changes(self.db, run_id, folder_id, uidvalidity, revived)  # revived UIDs' history
            for item in adoptions:
                added += self._upsert_placement(run_id, folder_id, uidvalidity, item)
            self.db.execute("UPDATE runs SET messages_new = messages_new + ? WHERE id = ?", (added, run_id))
        return added

    def mark_placements_gone(
        self, run_id: int, folder_id: int, uidvalidity: int | None, uids: Iterable[int | str] | None
    ) -> int:
        """Mark messages expunged on the server (all of a uidvalidity's when ``uids`` is None)."""
        with self.transaction():
            if uids is None:
                cursor = self.db.execute(
                    "UPDATE placements SET gone_since_run = ? WHERE folder_id = ? AND gone_since_run IS NULL "
                    "AND (? IS NULL OR uidvalidity = ?)",
                    (run_id, folder_id, uidvalidity, uidvalidity),
                )
                count = cursor.rowcount
            else:
                count = 0
                for uid in uids:
                    count += self.db.execute(
                        "UPDATE placements SET gone_since_run = ? WHERE folder_id = ? AND uidvalidity = ? "
                        "AND uid = ? AND gone_since_run IS NULL",
                        (run_id, folder_id, uidvalidity, uid),
                    ).rowcount
            self.db.execute("UPDATE runs SET messages_gone = messages_gone + ? WHERE id = ?", (count, run_id))
        return count

    def update_flags(
        self, run_id: int, folder_id: int, uidvalidity: int, flags_by_uid: dict[int | str, tuple[str, ...]]
    ) -> int:
        """Make placements' flags follow the server; returns how many changed."""
        encoded = {uid: encode_flags(flags) for uid, flags in flags_by_uid.items()}
        with self.transaction():
            changed = record_flag_changes(self.db, run_id, folder_id, uidvalidity, encoded)
            self.db.execute("UPDATE runs SET flags_changed = flags_changed + ? WHERE id = ?", (changed, run_id))
        return changed

    # -- recognising archived messages (archiver.backup.remap, archiver.backup.header_print) -------------
    def copies_by_message_id(self, account_id: int, message_ids: Iterable[str]) -> list[KnownCopyRow]:
        """Every placement (present or gone, any folder) of the account whose message has one of these Message-IDs."""
        rows = select_in(
            self.db,
            "SELECT DISTINCT p.blob_id, m.message_id, p.size, p.internaldate FROM messages m "
            "JOIN placements p ON p.blob_id = m.blob_id JOIN folders f ON f.id = p.folder_id "
            "WHERE f.account_id = ? AND m.message_id IN ({marks})",
            sorted(set(message_ids)),
            before=(account_id,),
        )
        return list(map(KnownCopyRow._make, rows))

    def copies_without_message_id(self, account_id: int, sizes: Iterable[int]) -> list[KnownCopyRow]:
        """Placements (present or gone) of the account's messages without a Message-ID, of these sizes.

        After a UIDVALIDITY reset every old placement is gone, hence both; the partial index
        ``messages_without_message_id`` (migration 7) keeps this proportional to the matches, not the archive.
        """
        rows = select_in(
            self.db,
            "SELECT DISTINCT m.blob_id, NULL AS message_id, m.size, p.internaldate FROM messages m "
            "INDEXED BY messages_without_message_id "
            "JOIN placements p ON p.blob_id = m.blob_id JOIN folders f ON f.id = p.folder_id "
            "WHERE m.message_id IS NULL AND m.size IN ({marks}) AND f.account_id = ?",
            sorted(set(sizes)),
            after=(account_id,),
        )
        return list(map(KnownCopyRow._make, rows))

    def known_blob_ids(self, blob_ids: Sequence[str]) -> set[str]:
        """Which of these blobs the catalog already has (an import counts what it deduplicated)."""
        rows = select_in(self.db, "SELECT blob_id FROM messages WHERE blob_id IN ({marks})", blob_ids)
        return {row[0] for row in rows}

    # -- reading placements (restore, export, ls) ----------------------------------------------------
    def placements_as_of(
        self, account_id: int, folder: str | None = None, run_id: int | None = None, expunged: bool = False
    ) -> Iterator[PlacementRow]:
        """Every message present in the account (or one folder) after run ``run_id`` (None: now).

        Present after run R means: first seen in a run <= R and not gone by R.
        Folders gone from the server are included: their messages are marked
        gone only if they were expunged before the folder disappeared.  With
        ``expunged`` the other side instead: the messages first seen by R and
        gone by R (expunged, or under an old UIDVALIDITY), with their last flags.
        """
        # Flags as of the run from the flag history (migration 3; a read-only, older catalog has none yet).
        as_of_flags = run_id is not None and self.schema_version >= 3
        sql = _PLACEMENT_SELECT.format(flags=f"{FLAGS_AS_OF_SQL} AS flags" if as_of_flags else "p.flags")
        sql += "WHERE f.account_id = ?"
        params: list[object] = [run_id] if as_of_flags else []
        params.append(account_id)
        if folder is not None:
            sql += " AND f.name = ?"
            params.append(folder)
        condition, values = as_of_filter(run_id, expunged)
        sql += condition
        params += values
        sql += " ORDER BY f.name, p.internaldate, p.id"
        for row in self.db.execute(sql, params):
            yield _placement_row(row)

    def restore_placement(self, placement_id: int) -> PlacementRow | None:
        """One placement by id (present or gone), with what a restore needs."""
        row = self.db.execute(_RESTORE_SELECT + "WHERE p.id = ?", (placement_id,)).fetchone()
        return None if row is None else _placement_row(row)

    def restore_placement_of_blob(self, blob_id: str, account_id: int | None) -> PlacementRow | None:
        """A placement of a blob (in one account if given): present ones first, then the newest."""
        sql = _RESTORE_SELECT + "WHERE p.blob_id = ?"
        params: list[object] = [blob_id]
        if account_id is not None:
            sql += " AND f.account_id = ?"
            params.append(account_id)
        sql += " ORDER BY p.gone_since_run IS NOT NULL, p.id DESC LIMIT 1"
        row = self.db.execute(sql, params).fetchone()
        return None if row is None else _placement_row(row)


def _placement_row(row: sqlite3.Row) -> PlacementRow:
    """A row of :data:`_PLACEMENT_SELECT` as a PlacementRow."""
    return PlacementRow(
        id=row["id"],
        folder=row["folder"],
        delimiter=row["delimiter"],
        uidvalidity=row["uidvalidity"],
        uid=row["uid"],
        blob_id=row["blob_id"],
        flags=decode_flags(row["flags"]),
        internaldate=row["internaldate"],
        size=row["size"],
        first_seen_run=row["first_seen_run"],
        gone_since_run=row["gone_since_run"],
        message_id=row["message_id"],
        subject=row["subject"],
        sender=row["sender"],
        date=row["date"],
    )
