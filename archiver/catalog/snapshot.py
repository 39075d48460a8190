"""A consistent copy of the catalog in one self-contained file, taken while runs may write.

SQLite's online backup API copies the database page by page under a read
transaction, so the copy is the catalog as of one commit: never half a batch.
The copy is switched out of WAL mode, so the one file is the whole database
(``sqlite3 FILE`` opens it; nothing else need travel with it).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from archiver.catalog.connection import CatalogConnection, catalog_error


def write_snapshot(catalog: CatalogConnection, target: Path) -> None:
    """Write the catalog's current state to ``target`` (replaced if it exists), checked before it is trusted."""
    target.unlink(missing_ok=True)
    try:
        copy = sqlite3.connect(target)
        try:
            catalog.db.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
            (answer,) = copy.execute("PRAGMA quick_check").fetchone()
            if answer != "ok":
                raise sqlite3.DatabaseError(f"the snapshot fails SQLite's check: {answer}")
        finally:
            copy.close()
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        raise catalog_error(target, exc) from exc
