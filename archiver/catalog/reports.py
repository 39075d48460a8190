"""Read models for ``archiver status``, ``verify``, the metrics and the web pages.

Most of these return ``sqlite3.Row``: their callers (the CLI, the web views and
their templates, the tests) read them by column name (``row["messages"]``) or
turn them into dicts for ``--json``, which a frozen dataclass would not allow
without changing every caller.  The metrics' figures, new here, are dataclasses.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

from archiver.catalog.connection import CatalogConnection
from archiver.catalog.history import FLAGS_AS_OF_SQL, as_of_filter
from archiver.catalog.model import AccountRunSums, LatestRun, PresentTotals


class ReportQueries(CatalogConnection):
    """Totals, latest runs and errors, verification reads, and the web pages' queries."""

    def folder_report(self, account_id: int) -> list[sqlite3.Row]:
        """Per folder: present messages, their bytes, and whether the folder is gone."""
        return self.db.execute(
            "SELECT f.name, f.gone_since, f.uidvalidity, f.server_messages, "
            "COUNT(p.id) AS messages, COALESCE(SUM(p.size), 0) AS bytes "
            "FROM folders f LEFT JOIN placements p ON p.folder_id = f.id AND p.gone_since_run IS NULL "
            "WHERE f.account_id = ? GROUP BY f.id ORDER BY f.name",
            (account_id,),
        ).fetchall()

    def last_runs(self, account_id: int, limit: int = 1) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT * FROM runs WHERE account_id = ? ORDER BY id DESC LIMIT ?", (account_id, limit)
        ).fetchall()

    def last_error(self, account_id: int) -> sqlite3.Row | None:
        return self.db.execute(
            "SELECT e.* FROM run_errors e JOIN runs r ON r.id = e.run_id WHERE r.account_id = ? "
            "ORDER BY e.id DESC LIMIT 1",
            (account_id,),
        ).fetchone()

    def archive_totals(self) -> sqlite3.Row:
        return self.db.execute(
            "SELECT COUNT(*) AS blobs, COALESCE(SUM(size), 0) AS raw_bytes, "
            "COALESCE(SUM(stored_size), 0) AS stored_bytes FROM messages"
        ).fetchone()

    def account_totals(self, account_id: int) -> sqlite3.Row:
        return self.db.execute(
            "SELECT COUNT(p.id) AS messages, COUNT(DISTINCT p.blob_id) AS blobs, COALESCE(SUM(p.size), 0) AS bytes "
            "FROM placements p JOIN folders f ON f.id = p.folder_id "
            "WHERE f.account_id = ? AND p.gone_since_run IS NULL",
            (account_id,),
        ).fetchone()

    # -- metrics (archiver.daemon.metrics): one aggregate query each, per account name ---------------
    def last_success_by_account(self) -> dict[str, str]:
        """Account name → end (ISO 8601) of its latest run with status ``ok``; accounts without one are absent."""
        rows = self.db.execute(
            "SELECT a.name, MAX(r.ended_at) FROM runs r JOIN accounts a ON a.id = r.account_id "
            "WHERE r.status = 'ok' GROUP BY a.name"
        )
        return {row[0]: row[1] for row in rows}

    def latest_runs(self) -> list[LatestRun]:
        """The latest run of every account that has one."""
        rows = self.db.execute(
            "SELECT a.name, r.started_at, r.ended_at, r.status, r.errors FROM runs r "
            "JOIN accounts a ON a.id = r.account_id "
            "WHERE r.id IN (SELECT MAX(id) FROM runs GROUP BY account_id)"
        )
        return [LatestRun(*row) for row in rows]

    def run_counts(self) -> list[tuple[str, str, int]]:
        """(account, status, number of runs) for every status an account's runs ended with."""
        rows = self.db.execute(
            "SELECT a.name, r.status, COUNT(*) FROM runs r JOIN accounts a ON a.id = r.account_id GROUP BY 1, 2"
        )
        return [(row[0], row[1], row[2]) for row in rows]

    def run_sums(self) -> list[AccountRunSums]:
        """What all runs of each account added up to."""
        rows = self.db.execute(
            "SELECT a.name, SUM(r.messages_new), SUM(r.bytes_fetched), SUM(r.bytes_stored), SUM(r.errors) "
            "FROM runs r JOIN accounts a ON a.id = r.account_id GROUP BY a.name"
        )
        return [AccountRunSums(row[0], *(value or 0 for value in row[1:])) for row in rows]

    def present_totals(self) -> list[PresentTotals]:
        """Per account with any: messages present (not gone from the server) and their raw bytes (one pass)."""
        rows = self.db.execute(
            "SELECT a.name, COUNT(p.id), COALESCE(SUM(p.size), 0) FROM placements p "
            "JOIN folders f ON f.id = p.folder_id JOIN accounts a ON a.id = f.account_id "
            "WHERE p.gone_since_run IS NULL GROUP BY a.name"
        )
        return [PresentTotals(*row) for row in rows]

    # -- verification -----------------------------------------------------------------
    def iter_message_blobs(self) -> Iterator[tuple[str, int]]:
        """(blob id, size) of every message the catalog knows."""
        for row in self.db.execute("SELECT blob_id, size FROM messages ORDER BY blob_id"):
            yield row[0], row[1]

    def dangling_placements(self) -> list[sqlite3.Row]:
        """Placements whose message row is missing (should never happen; verify reports it)."""
        return self.db.execute(
            "SELECT p.id, p.blob_id FROM placements p LEFT JOIN messages m ON m.blob_id = p.blob_id "
            "WHERE m.blob_id IS NULL"
        ).fetchall()

    def integrity_check(self) -> list[str]:
        rows = self.db.execute("PRAGMA integrity_check").fetchall()
        return [row[0] for row in rows if row[0] != "ok"]

    # -- web UI (web/) -------------------------------------------------------------------
    # Read-only queries for the pages.  Folder pages use keyset pagination on the
    # placements_folder_date index (folder_id, internaldate, id): page 1,000 costs what page 1 does.
    def web_folders(self, account_id: int) -> list[sqlite3.Row]:
        """Every folder of an account, gone ones included, with present message counts and bytes."""
        return self.db.execute(
            "SELECT f.id, f.name, f.delimiter, f.special_use, f.gone_since, "
            "(SELECT COUNT(*) FROM placements p WHERE p.folder_id = f.id AND p.gone_since_run IS NULL) AS messages "
            "FROM folders f WHERE f.account_id = ? ORDER BY f.name",
            (account_id,),
        ).fetchall()

    def web_folder(self, folder_id: int) -> sqlite3.Row | None:
        return self.db.execute(
            "SELECT f.*, a.name AS account FROM folders f JOIN accounts a ON a.id = f.account_id WHERE f.id = ?",
            (folder_id,),
        ).fetchone()

    def web_folder_page(
        self, folder_id: int, *, before: tuple[str, int] | None, limit: int, run_id: int | None = None
    ) -> list[sqlite3.Row]:
        """One page of a folder, newest first, strictly older than the keyset ``before`` (internaldate, id).

        ``run_id`` shows the folder as it was after that run (gone messages included when they were present,
        flags as they were then).
        """
        flags_sql = "p.flags" if run_id is None else f"{FLAGS_AS_OF_SQL} AS flags"
        sql = (
            f"SELECT p.id, p.blob_id, {flags_sql}, p.internaldate, p.size, p.gone_since_run, m.subject, m.sender, "
            "m.date FROM placements p JOIN messages m ON m.blob_id = p.blob_id WHERE p.folder_id = ?"
        )
        params: list[object] = [] if run_id is None else [run_id]
        params.append(folder_id)
        condition, values = as_of_filter(run_id)
        sql += condition
        params += values
        if before is not None:
            # A row value, not "a < ? OR (a = ? AND id < ?)": SQLite seeks straight to it (the OR form scans).
            sql += " AND (p.internaldate, p.id) < (?, ?)"
            params += [before[0], before[1]]
        sql += " ORDER BY p.internaldate DESC, p.id DESC LIMIT ?"
        params.append(limit)
        return self.db.execute(sql, params).fetchall()

    def web_placement(self, placement_id: int) -> sqlite3.Row | None:
        """A placement with its account, folder and message headers (None if unknown)."""
        return self.db.execute(
            "SELECT p.*, f.name AS folder, f.account_id, a.name AS account, m.subject, m.sender, m.recipients, "
            "m.date, m.message_id FROM placements p JOIN folders f ON f.id = p.folder_id "
            "JOIN accounts a ON a.id = f.account_id JOIN messages m ON m.blob_id = p.blob_id WHERE p.id = ?",
            (placement_id,),
        ).fetchone()

    def web_placement_of_blob(self, blob_id: str, accounts: Sequence[str]) -> int | None:
        """A placement id of the blob in one of ``accounts`` (present ones first), for links from search hits."""
        if not accounts:
            return None
        marks = ",".join("?" * len(accounts))
        row = self.db.execute(
            "SELECT p.id FROM placements p JOIN folders f ON f.id = p.folder_id JOIN accounts a ON a.id = f.account_id "
            f"WHERE p.blob_id = ? AND a.name IN ({marks}) ORDER BY p.gone_since_run IS NOT NULL, p.id LIMIT 1",
            (blob_id, *accounts),
        ).fetchone()
        return row[0] if row else None

    def web_runs(self, account_ids: Sequence[int], limit: int = 50) -> list[sqlite3.Row]:
        """The latest runs of these accounts, newest first, with their account name."""
        if not account_ids:
            return []
        marks = ",".join("?" * len(account_ids))
        return self.db.execute(
            f"SELECT r.*, a.name AS account FROM runs r JOIN accounts a ON a.id = r.account_id "
            f"WHERE r.account_id IN ({marks}) ORDER BY r.id DESC LIMIT ?",
            (*account_ids, limit),
        ).fetchall()
