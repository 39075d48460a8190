"""Web login sessions (migration 6), kept in the catalog so that logout, a password change or
``archiver sessions revoke`` end them on the server, whichever process serves the web UI.

Only a hash of the cookie's token is stored (:mod:`web.sessions` makes it); times are Unix seconds.
"""

from __future__ import annotations

import sqlite3

from archiver.catalog.connection import CatalogConnection


class WebSessionQueries(CatalogConnection):
    """The ``web_sessions`` table."""

    def add_web_session(self, token_hash: str, user: str, credential: str, now: float) -> None:
        self.db.execute(
            "INSERT INTO web_sessions (token_hash, user, credential, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)",
            (token_hash, user, credential, now, now),
        )

    def web_session(self, token_hash: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM web_sessions WHERE token_hash = ?", (token_hash,)).fetchone()

    def touch_web_session(self, token_hash: str, now: float) -> None:
        self.db.execute("UPDATE web_sessions SET last_seen_at = ? WHERE token_hash = ?", (now, token_hash))

    def web_sessions(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM web_sessions ORDER BY user, created_at").fetchall()

    def end_web_sessions(self, *, token_hash: str | None = None, user: str | None = None) -> int:
        """Delete one session (``token_hash``), a user's sessions (``user``), or, with neither, all; the count."""
        if token_hash is not None:
            cursor = self.db.execute("DELETE FROM web_sessions WHERE token_hash = ?", (token_hash,))
        elif user is not None:
            cursor = self.db.execute("DELETE FROM web_sessions WHERE user = ?", (user,))
        else:
            cursor = self.db.execute("DELETE FROM web_sessions")
        return cursor.rowcount

    def purge_web_sessions(self, created_before: float, seen_before: float) -> int:
        """Forget sessions past their absolute lifetime or idle timeout (they can no longer be used anyway)."""
        cursor = self.db.execute(
            "DELETE FROM web_sessions WHERE created_at < ? OR last_seen_at < ?", (created_before, seen_before)
        )
        return cursor.rowcount
