"""Accounts and backup runs: a run row per backup, its counters and its errors.

A run still marked ``running`` when the next one starts was killed; it is closed
as ``interrupted`` then, so no run stays open forever.  Run ids grow with time,
which is what lets "the state after run R" stand for "the state at time T".
"""

from __future__ import annotations

import sqlite3

from archiver.catalog.connection import CatalogConnection
from archiver.times import utc_now


class RunQueries(CatalogConnection):
    """Accounts, runs and run errors."""

    def ensure_account(self, name: str, protocol: str) -> int:
        row = self.db.execute("SELECT id FROM accounts WHERE name = ?", (name,)).fetchone()
        if row:
            return row["id"]
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO accounts (name, protocol, created_at) VALUES (?, ?, ?)",
                (name, protocol, utc_now().isoformat()),
            )
        return int(cursor.lastrowid)

    def account_id(self, name: str) -> int | None:
        row = self.db.execute("SELECT id FROM accounts WHERE name = ?", (name,)).fetchone()
        return None if row is None else row["id"]

    def start_run(self, account_id: int) -> int:
        with self.transaction():
            # A run still marked running was killed: say so instead of leaving it open forever.
            self.db.execute(
                "UPDATE runs SET status = 'interrupted', ended_at = COALESCE(ended_at, ?) "
                "WHERE account_id = ? AND status = 'running'",
                (utc_now().isoformat(), account_id),
            )
            cursor = self.db.execute(
                "INSERT INTO runs (account_id, started_at) VALUES (?, ?)",
                (account_id, utc_now().isoformat()),
            )
        return int(cursor.lastrowid)

    def record_error(self, run_id: int, folder: str | None, message: str, uid: int | str | None = None) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO run_errors (run_id, folder, uid, message, at) VALUES (?, ?, ?, ?, ?)",
                (run_id, folder, uid, message, utc_now().isoformat()),
            )
            self.db.execute("UPDATE runs SET errors = errors + 1 WHERE id = ?", (run_id,))

    def finish_run(
        self, run_id: int, status: str, folders_seen: int, folders_unchanged: int, folders_failed: int
    ) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE runs SET status = ?, ended_at = ?, folders_seen = ?, folders_unchanged = ?, "
                "folders_failed = ? WHERE id = ?",
                (status, utc_now().isoformat(), folders_seen, folders_unchanged, folders_failed, run_id),
            )

    def run(self, run_id: int) -> sqlite3.Row:
        """The run row (columns as in migration 1); a Row, because callers read it by column name."""
        return self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()

    def run_errors(self, run_id: int) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM run_errors WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()

    def run_at(self, account_id: int, when: str) -> int | None:
        """The last run of the account that started at or before ``when`` (ISO 8601, UTC).

        The archive's state "at time T" is the state after that run (its
        committed batches included, even if it was interrupted).
        """
        row = self.db.execute(
            "SELECT MAX(id) FROM runs WHERE account_id = ? AND started_at <= ?", (account_id, when)
        ).fetchone()
        return row[0]

    def accounts_with_runs(self) -> set[str]:
        """Names of the accounts that have been backed up at least once (whatever the outcome)."""
        rows = self.db.execute("SELECT DISTINCT a.name FROM accounts a JOIN runs r ON r.account_id = a.id")
        return {row[0] for row in rows}

    def account_has_messages(self, account_id: int) -> bool:
        """Whether any placement exists for the account (a first backup skips the fingerprint round trip).

        Asked of the account's runs, not its placements: every placement is recorded with its run's
        ``messages_new`` raised in the same transaction and never deleted, so "some run added a message"
        is the same question, and it costs the same with 100,000 folders (looking for a placement folder
        by folder cost a probe per empty folder, for every new folder: quadratic).  Either answer is safe:
        a wrong "no" costs downloads, a wrong "yes" a header look.
        """
        row = self.db.execute(
            "SELECT 1 FROM runs WHERE account_id = ? AND messages_new > 0 LIMIT 1", (account_id,)
        ).fetchone()
        return row is not None
