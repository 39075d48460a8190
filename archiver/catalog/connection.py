"""The catalog's connection: transactions, SQLite errors as one line, and the chunked ``IN (...)``.

Every concern module of the catalog (runs, folders, placements, …) is a mixin
on :class:`CatalogConnection`, so its queries use the same connection and
transaction; :class:`archiver.catalog.Catalog` adds opening and migrating.
They import this module, never the package ``__init__`` (that would be an
import circle: the package imports them).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from archiver.errors import CatalogError

IN_CHUNK = 500
"""Values bound per ``IN (...)`` list: well under SQLite's limit on host parameters (999 in old builds)."""


class CatalogConnection:
    """One SQLite connection to the catalog of an archive (``db``), and the file it reads (``path``)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self.db = connection
        self.path = path

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work (BEGIN IMMEDIATE, so writers queue instead of failing).

        SQLite failures (disk full, I/O error, a lock held too long) become one-line
        :class:`CatalogError`s; the transaction is rolled back, so the catalog stays as it was.
        """
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise catalog_error(self.path, exc) from exc
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException as exc:
            if self.db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise catalog_error(self.path, exc) from exc
            raise

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]


def catalog_error(path: Path, exc: sqlite3.Error) -> CatalogError:
    """A clear line for a failed catalog write; SQLITE_FULL gets the same words as a full blob store."""
    text = str(exc)
    if "disk is full" in text or getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL":
        return CatalogError(f"disk full while writing the catalog {path}: free some space and run again")
    return CatalogError(f"cannot write the catalog {path}: {text}")


def select_in(
    db: sqlite3.Connection,
    sql: str,
    values: Iterable[object],
    before: Sequence[object] = (),
    after: Sequence[object] = (),
) -> Iterator[sqlite3.Row]:
    """Rows of ``sql`` for any number of ``values``, bound :data:`IN_CHUNK` at a time.

    ``sql`` holds ``{marks}`` where the ``IN`` list goes; ``before`` and ``after`` are the
    parameters bound ahead of and behind the list.  Each chunk is its own query, so a DISTINCT
    or GROUP BY holds within a chunk: enough when the rows carry the listed column.
    """
    values = list(values)
    for start in range(0, len(values), IN_CHUNK):
        chunk = values[start : start + IN_CHUNK]
        yield from db.execute(sql.format(marks=",".join("?" * len(chunk))), (*before, *chunk, *after))
