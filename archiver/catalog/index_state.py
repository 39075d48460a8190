"""What the search index asks the catalog: what lies past its bookmark, and what it last wrote.

The index keeps a bookmark (the largest ``messages`` rowid and ``placement_changes``
seq it has absorbed, migration 2); these queries read what lies past it, so an
update costs in proportion to what changed.  ``index_fields`` (migration 5)
remembers a digest of each document's placement fields, so a refresh skips the
documents whose account, folder and flags fields are the same.  Rows are
``sqlite3.Row``: the index reads them by column name (``row["rowid"]``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from archiver.catalog.connection import CatalogConnection, select_in
from archiver.catalog.model import IndexBacklog
from archiver.times import utc_now


class IndexStateQueries(CatalogConnection):
    """The index's bookmarks, documents to write, digests and problems; the rows shown for search hits."""

    def index_high_water(self) -> tuple[int, int]:
        """(largest messages rowid, largest placement change seq): the catalog state right now."""
        rowid = self.db.execute("SELECT COALESCE(MAX(rowid), 0) FROM messages").fetchone()[0]
        seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM placement_changes").fetchone()[0]
        return rowid, seq

    def index_backlog(self, bookmark: tuple[int, int] | None, *, count_changes: bool = True) -> IndexBacklog:
        """What lies past the index's ``bookmark`` (rowid, seq; None: nothing indexed yet).

        ``count_changes=False`` counts the changes only when no new message waits: while a big backlog
        is indexed the change log holds a row per new placement, each to be looked up (the search
        page, asked on every query, needs to know only that the index lags).

        Indexed lookups (the largest rowid, one row past the bookmark, and the change log, which holds
        only what the index has not absorbed yet), so the status page, the search page and a metrics
        scrape can ask it every time.
        """
        rowid, seq = bookmark if bookmark is not None else (0, 0)
        # Rows of ``messages`` are never deleted and SQLite numbers a new row after the largest, so the count
        # past the bookmark is a difference of rowids, not a scan of the rows themselves.
        last = self.db.execute("SELECT COALESCE(MAX(rowid), 0) FROM messages").fetchone()[0]
        messages = max(0, last - rowid)
        oldest = self.db.execute(
            "SELECT added_at FROM messages WHERE rowid > ? ORDER BY rowid LIMIT 1", (rowid,)
        ).fetchone()
        changes = 0
        if bookmark is not None and (count_changes or messages == 0):
            changes = self.db.execute(
                "SELECT COUNT(DISTINCT c.blob_id) FROM placement_changes c JOIN messages m ON m.blob_id = c.blob_id "
                "WHERE c.seq > ? AND m.rowid <= ?",
                (seq, rowid),
            ).fetchone()[0]
        return IndexBacklog(messages, changes, oldest[0] if oldest else None)

    def messages_pending_index(self, after_rowid: int, upto_rowid: int) -> int:
        """How many messages lie between the index's bookmark and ``upto_rowid``."""
        return self.db.execute(
            "SELECT COUNT(*) FROM messages WHERE rowid > ? AND rowid <= ?", (after_rowid, upto_rowid)
        ).fetchone()[0]

    def messages_for_index(self, after_rowid: int, upto_rowid: int, limit: int) -> list[sqlite3.Row]:
        """(rowid, blob_id, size) of messages added after a bookmark, oldest first."""
        return self.db.execute(
            "SELECT rowid, blob_id, size FROM messages WHERE rowid > ? AND rowid <= ? ORDER BY rowid LIMIT ?",
            (after_rowid, upto_rowid, limit),
        ).fetchall()

    def message_rows_for_index(self, blob_ids: Sequence[str]) -> list[sqlite3.Row]:
        """(rowid, blob_id, size) of the given blobs (those the catalog knows)."""
        sql = "SELECT rowid, blob_id, size FROM messages WHERE blob_id IN ({marks})"
        return list(select_in(self.db, sql, blob_ids))

    def placements_for_index(self, blob_ids: Sequence[str]) -> dict[str, list[tuple[str, str, str, str | None]]]:
        """Every placement (present or gone) of the blobs: (account, folder, flags, internaldate)."""
        result: dict[str, list[tuple[str, str, str, str | None]]] = {blob_id: [] for blob_id in blob_ids}
        for row in select_in(
            self.db,
            "SELECT p.blob_id, a.name, f.name, p.flags, p.internaldate FROM placements p "
            "JOIN folders f ON f.id = p.folder_id JOIN accounts a ON a.id = f.account_id "
            "WHERE p.blob_id IN ({marks})",
            blob_ids,
        ):
            result[row[0]].append((row[1], row[2], row[3], row[4]))
        return result

    def changed_blobs_for_index(self, after_seq: int, upto_seq: int) -> list[str]:
        """Blobs whose placements changed in (after_seq, upto_seq]."""
        rows = self.db.execute(
            "SELECT DISTINCT blob_id FROM placement_changes WHERE seq > ? AND seq <= ?", (after_seq, upto_seq)
        )
        return [row[0] for row in rows]

    def index_digests(self, generation: str, blob_ids: Sequence[str]) -> dict[str, str]:
        """The placement digests index generation ``generation`` last wrote for these blobs (absent: unknown)."""
        rows = select_in(
            self.db,
            "SELECT blob_id, digest FROM index_fields WHERE generation = ? AND blob_id IN ({marks})",
            blob_ids,
            before=(generation,),
        )
        return {row[0]: row[1] for row in rows}

    def record_index_digests(self, generation: str, digests: dict[str, str]) -> None:
        """Note what a generation now holds; call only after the index commit that wrote those documents.

        A blob has one row: a rebuild that writes it for a new generation makes the old
        generation's lookup miss (so it rewrites, never skips wrongly) should the rebuild fail.
        """
        if not digests:
            return
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO index_fields (blob_id, generation, digest) VALUES (?, ?, ?)",
                ((blob_id, generation, digest) for blob_id, digest in digests.items()),
            )

    def keep_index_digests_of(self, generation: str) -> None:
        """Drop the rows of every other generation (after a rebuild was swapped in)."""
        with self.transaction():
            self.db.execute("DELETE FROM index_fields WHERE generation != ?", (generation,))

    def forget_placement_changes(self, upto_seq: int) -> None:
        """Drop change-log entries the index has absorbed (it keeps its own bookmark)."""
        with self.transaction():
            self.db.execute("DELETE FROM placement_changes WHERE seq <= ?", (upto_seq,))

    def record_index_problems(self, problems: dict[str, list[str]]) -> None:
        """Why parts of these messages could not be indexed (latest reading wins)."""
        if not problems:
            return
        now = utc_now().isoformat()
        with self.transaction():
            for blob_id, lines in problems.items():
                self.db.execute(
                    "INSERT INTO index_problems (blob_id, problems, at) VALUES (?, ?, ?) ON CONFLICT (blob_id) "
                    "DO UPDATE SET problems = excluded.problems, at = excluded.at",
                    (blob_id, "\n".join(lines), now),
                )

    def index_problem_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM index_problems").fetchone()[0]

    def index_problems(self, limit: int = 50) -> list[dict]:
        """The latest messages indexed only in part: blob id, subject, when, and why (one line per reason)."""
        rows = self.db.execute(
            "SELECT p.blob_id, m.subject, p.at, p.problems FROM index_problems p "
            "LEFT JOIN messages m ON m.blob_id = p.blob_id ORDER BY p.at DESC, p.blob_id LIMIT ?",
            (limit,),
        )
        return [
            {"blob_id": blob_id, "subject": subject, "at": at, "problems": problems.splitlines()}
            for blob_id, subject, at, problems in rows
        ]

    def hit_details(self, blob_ids: Sequence[str]) -> dict[str, sqlite3.Row]:
        """Catalog rows (date, sender, subject, size, message_id) shown for search hits."""
        rows = select_in(
            self.db,
            "SELECT blob_id, date, sender, recipients, subject, size, message_id FROM messages "
            "WHERE blob_id IN ({marks})",
            blob_ids,
        )
        return {row["blob_id"]: row for row in rows}
