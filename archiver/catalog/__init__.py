"""The catalog: where every message lived, when, with which flags; the only SQL in archiver.

SQLite in WAL mode (readers never block the writer), ``synchronous=FULL`` so a
committed batch survives a power cut.  The schema evolves through the numbered
migrations of :mod:`archiver.catalog.schema`; ``PRAGMA user_version`` records
the last one applied.  A placement is never deleted: when the server expunges a
message the placement gets ``gone_since_run``, which is what lets us answer
"what was in this folder at time T".

One module per concern, each a mixin on :class:`~archiver.catalog.connection.CatalogConnection`
(the connection and its transactions), so every call site keeps saying ``catalog.method(...)``:
:mod:`~archiver.catalog.runs`, :mod:`~archiver.catalog.folders`, :mod:`~archiver.catalog.placements`,
:mod:`~archiver.catalog.index_state`, :mod:`~archiver.catalog.reports`, :mod:`~archiver.catalog.sessions`.
The tables that serve one feature outside the backup itself are read and written
by module functions taking the catalog, as their callers always did:
:mod:`~archiver.catalog.history` (flag history), :mod:`~archiver.catalog.labels`
(Gmail labels), :mod:`~archiver.catalog.schedule_state` (the scheduler's memory),
and :mod:`~archiver.catalog.as_of` (what an account held after a run, for ``ls``).
Plain data crosses the boundary (:mod:`~archiver.catalog.model`); no caller
outside this package runs SQL (a test in ``tests/unit/test_layout_rules.py`` says so).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from archiver.catalog.connection import CatalogConnection
from archiver.catalog.folders import FolderQueries
from archiver.catalog.index_state import IndexStateQueries
from archiver.catalog.model import (
    AccountRunSums,
    Adoption,
    FolderLife,
    FolderRecord,
    IndexBacklog,
    KnownCopyRow,
    LatestRun,
    NewPlacement,
    PlacementRow,
    PresentTotals,
    RunTotals,
    ScheduleState,
    decode_flags,
    encode_flags,
)
from archiver.catalog.placements import PlacementQueries
from archiver.catalog.reports import ReportQueries
from archiver.catalog.runs import RunQueries
from archiver.catalog.schema import MIGRATIONS, statements
from archiver.catalog.sessions import WebSessionQueries
from archiver.errors import CatalogError

__all__ = [
    "AccountRunSums",
    "Adoption",
    "Catalog",
    "FolderLife",
    "FolderRecord",
    "IndexBacklog",
    "KnownCopyRow",
    "LatestRun",
    "NewPlacement",
    "PlacementRow",
    "PresentTotals",
    "RunTotals",
    "ScheduleState",
    "decode_flags",
    "encode_flags",
]


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """Open the catalog for reading, also for a user who may not write to the archive directory.

    Why the second attempt: reading a WAL database needs its ``-shm`` file, which
    a reader without write access (a backup operator, a read-only mount) cannot
    create, so SQLite refuses even a SELECT.  When there is no ``-wal`` file the
    database file alone is the whole truth (no writer has it open, all is
    checkpointed), so it is opened ``immutable``, which needs no ``-shm``.  While
    a writer has it open, both files exist and a plain read-only open works as
    long as this user may read them (``group_readable``).
    """
    uri = f"file:{quote(str(path))}?mode=ro"
    options = {"uri": True, "isolation_level": None, "check_same_thread": False}
    db = sqlite3.connect(uri, **options)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError as exc:
        db.close()
        if "readonly" not in str(exc) and "unable to open" not in str(exc):
            raise  # locked, damaged…: reported as it is
        if path.with_name(path.name + "-wal").exists():  # a writer may have it open: immutable would be unsafe
            raise CatalogError(
                f"cannot read catalog {path} while another process has it open (a backup, the daemon): this user "
                "may not read its -wal and -shm files; try again later, or see [archive] group_readable"
            ) from None
    db = sqlite3.connect(uri + "&immutable=1", **options)
    db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return db


class Catalog(
    RunQueries,
    FolderQueries,
    PlacementQueries,
    IndexStateQueries,
    ReportQueries,
    WebSessionQueries,
    CatalogConnection,
):
    """One SQLite connection to the catalog of an archive."""

    FILENAME = "catalog.sqlite3"

    @classmethod
    def open(cls, archive_root: Path, readonly: bool = False) -> Catalog:
        """Open (creating and migrating if needed) the catalog of an archive."""
        path = Path(archive_root) / cls.FILENAME
        try:
            if readonly:
                if not path.exists():
                    raise CatalogError(f"no archive at {archive_root}: run a backup first")
                db = _connect_readonly(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA busy_timeout = 30000")
            if not readonly:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise CatalogError(f"cannot open catalog {path}: {exc}") from exc
        catalog = cls(db, path)
        if not readonly:
            catalog._migrate()
        return catalog

    def _migrate(self) -> None:
        version = self.schema_version
        latest = max(MIGRATIONS)
        if version > latest:
            raise CatalogError(
                f"catalog {self.path} has schema {version}, newer than this archiver knows ({latest}): upgrade archiver"
            )
        for number in sorted(n for n in MIGRATIONS if n > version):
            with self.transaction():
                for statement in statements(MIGRATIONS[number]):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")
