"""Folders of an account: created on first sight, marked gone (never deleted), revived when back.

A folder row also remembers the server state it was last completely synced to
(UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, message count), which is what lets an
unchanged folder cost one STATUS and nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable

from archiver.catalog.connection import CatalogConnection
from archiver.catalog.model import FolderLife, FolderRecord
from archiver.errors import CatalogError
from archiver.times import utc_now

_FOLDER_COLUMNS = (
    "id, account_id, name, delimiter, special_use, uidvalidity, uidnext, highestmodseq, server_messages, gone_since_run"
)


class FolderQueries(CatalogConnection):
    """The folders table."""

    def folders(self, account_id: int) -> dict[str, FolderRecord]:
        """Every folder of the account by name (once per run; per folder use :meth:`folder`)."""
        rows = self.db.execute(f"SELECT {_FOLDER_COLUMNS} FROM folders WHERE account_id = ?", (account_id,))
        return {row["name"]: FolderRecord(**dict(row)) for row in rows}

    def folder(self, account_id: int, name: str) -> FolderRecord | None:
        """One folder's record by its unique (account, name) key: the same work however many folders exist."""
        row = self.db.execute(
            f"SELECT {_FOLDER_COLUMNS} FROM folders WHERE account_id = ? AND name = ?", (account_id, name)
        ).fetchone()
        return None if row is None else FolderRecord(**dict(row))

    def folder_lives(self, account_id: int) -> list[FolderLife]:
        """Every folder of the account, gone ones included, with when it appeared and left; by name."""
        rows = self.db.execute(
            "SELECT name, first_seen_run, gone_since_run, gone_since FROM folders WHERE account_id = ? ORDER BY name",
            (account_id,),
        )
        return [FolderLife(**dict(row)) for row in rows]

    def ensure_folder(
        self, account_id: int, name: str, delimiter: str | None, special_use: str | None, run_id: int
    ) -> FolderRecord:
        """The folder's record, created on first sight and revived if it had been gone.

        A gone folder that shows up again (deleted and re-created under the same name, or back after a
        rename or a listing glitch) is synced from scratch: its old messages are marked gone since the
        run that found the folder missing, so "as of" any run in between shows the folder empty, not its
        old content.  The sync that follows recognises messages still there by fingerprint (no body is
        downloaded) and revives their placements.
        """
        with self.transaction():
            old = self.db.execute(
                "SELECT id, gone_since_run FROM folders WHERE account_id = ? AND name = ?", (account_id, name)
            ).fetchone()
            if old is not None and old["gone_since_run"] is not None:
                self.db.execute(
                    "UPDATE placements SET gone_since_run = ? WHERE folder_id = ? AND gone_since_run IS NULL",
                    (old["gone_since_run"], old["id"]),
                )
                self.db.execute(
                    "UPDATE folders SET uidvalidity = NULL, uidnext = NULL, highestmodseq = NULL, "
                    "server_messages = NULL WHERE id = ?",
                    (old["id"],),
                )
            self.db.execute(
                "INSERT INTO folders (account_id, name, delimiter, special_use, first_seen_run) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, name) DO UPDATE SET "
                "delimiter = excluded.delimiter, special_use = excluded.special_use, "
                "gone_since_run = NULL, gone_since = NULL",
                (account_id, name, delimiter, special_use, run_id),
            )
            record = self.folder(account_id, name)
        if record is None:  # cannot happen: the row was written in this transaction
            raise CatalogError(f"catalog {self.path}: folder {name!r} vanished while being recorded")
        return record

    def save_folder_state(
        self,
        folder_id: int,
        uidvalidity: int,
        uidnext: int | None,
        highestmodseq: int | None,
        server_messages: int | None,
        run_id: int,
    ) -> None:
        """Record the server state a folder was completely synced to (the STATUS short-circuit)."""
        with self.transaction():
            self.db.execute(
                "UPDATE folders SET uidvalidity = ?, uidnext = ?, highestmodseq = ?, server_messages = ?, "
                "last_synced_run = ? WHERE id = ?",
                (uidvalidity, uidnext, highestmodseq, server_messages, run_id, folder_id),
            )

    def mark_folders_gone(self, account_id: int, names: Iterable[str], run_id: int) -> int:
        names = list(names)
        with self.transaction():
            for name in names:
                self.db.execute(
                    "UPDATE folders SET gone_since_run = ?, gone_since = ? "
                    "WHERE account_id = ? AND name = ? AND gone_since_run IS NULL",
                    (run_id, utc_now().isoformat(), account_id, name),
                )
        return len(names)
