"""The catalog: where every message lived, when, with which flags; the only SQL.

SQLite in WAL mode (readers never block the writer), ``synchronous=FULL`` so a
committed batch survives a power cut.  The schema evolves through numbered
migrations in :data:`MIGRATIONS`; ``PRAGMA user_version`` records the last one
applied.  A placement is never deleted: when the server expunges a message the
placement gets ``gone_since_run``, which is what lets us answer "what was in
this folder at time T".

``placements.uid`` is declared without a type on purpose: it holds the IMAP UID
(an integer) or, for POP3, the UIDL (text, kept verbatim with leading zeros).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from archiver.catalog.history import FLAGS_AS_OF_SQL, record_flag_changes, record_revived_flag_changes
from archiver.errors import CatalogError
from archiver.mail.headers import HeaderSummary
from archiver.times import utc_now

MIGRATIONS: dict[int, str] = {
    # 1: the backbone
    1: """
    CREATE TABLE accounts (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        protocol TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        started_at TEXT NOT NULL,
        ended_at TEXT,
        status TEXT NOT NULL DEFAULT 'running',
        folders_seen INTEGER NOT NULL DEFAULT 0,
        folders_unchanged INTEGER NOT NULL DEFAULT 0,
        folders_failed INTEGER NOT NULL DEFAULT 0,
        messages_new INTEGER NOT NULL DEFAULT 0,
        blobs_new INTEGER NOT NULL DEFAULT 0,
        bytes_fetched INTEGER NOT NULL DEFAULT 0,
        bytes_stored INTEGER NOT NULL DEFAULT 0,
        flags_changed INTEGER NOT NULL DEFAULT 0,
        messages_gone INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX runs_account ON runs(account_id, id);
    CREATE TABLE run_errors (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        folder TEXT,
        uid,
        message TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX run_errors_run ON run_errors(run_id);
    CREATE TABLE folders (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        name TEXT NOT NULL,
        delimiter TEXT,
        special_use TEXT,
        uidvalidity INTEGER,
        uidnext INTEGER,
        highestmodseq INTEGER,
        server_messages INTEGER,
        first_seen_run INTEGER REFERENCES runs(id),
        last_synced_run INTEGER REFERENCES runs(id),
        gone_since_run INTEGER REFERENCES runs(id),
        gone_since TEXT,
        UNIQUE (account_id, name)
    );
    CREATE TABLE messages (
        blob_id TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        stored_size INTEGER NOT NULL,
        message_id TEXT,
        date TEXT,
        sender TEXT,
        recipients TEXT,
        subject TEXT,
        first_seen_run INTEGER REFERENCES runs(id),
        added_at TEXT NOT NULL
    );
    CREATE INDEX messages_message_id ON messages(message_id);
    CREATE TABLE placements (
        id INTEGER PRIMARY KEY,
        folder_id INTEGER NOT NULL REFERENCES folders(id),
        uidvalidity INTEGER NOT NULL,
        uid NOT NULL,
        blob_id TEXT NOT NULL REFERENCES messages(blob_id),
        flags TEXT NOT NULL DEFAULT '',
        internaldate TEXT,
        size INTEGER NOT NULL,
        first_seen_run INTEGER NOT NULL REFERENCES runs(id),
        gone_since_run INTEGER REFERENCES runs(id),
        UNIQUE (folder_id, uidvalidity, uid)
    );
    CREATE INDEX placements_blob ON placements(blob_id);
    CREATE INDEX placements_folder_date ON placements(folder_id, internaldate, id);
    """,
    # 2: search index bookkeeping. Triggers log every placement change, whoever makes it,
    # so the index can refresh the account/folder/flags fields of exactly those blobs.
    2: """
    CREATE TABLE placement_changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        blob_id TEXT NOT NULL
    );
    CREATE TRIGGER placement_changes_insert AFTER INSERT ON placements BEGIN
        INSERT INTO placement_changes (blob_id) VALUES (NEW.blob_id);
    END;
    CREATE TRIGGER placement_changes_update AFTER UPDATE OF folder_id, blob_id, flags, gone_since_run ON placements
    BEGIN
        INSERT INTO placement_changes (blob_id) VALUES (NEW.blob_id);
    END;
    CREATE TABLE index_problems (
        blob_id TEXT PRIMARY KEY,
        problems TEXT NOT NULL,
        at TEXT NOT NULL
    );
    """,
    # 3: sync fidelity (archiver.sync). flag_history: a placement's flags as of each run in which they
    # changed (the first row holds the flags it was first seen with); message_labels: Gmail labels.
    3: """
    CREATE TABLE flag_history (
        placement_id INTEGER NOT NULL REFERENCES placements(id),
        run_id INTEGER NOT NULL REFERENCES runs(id),
        flags TEXT NOT NULL,
        PRIMARY KEY (placement_id, run_id)
    ) WITHOUT ROWID;
    CREATE TABLE message_labels (
        placement_id INTEGER PRIMARY KEY REFERENCES placements(id),
        gm_msgid INTEGER,
        labels TEXT NOT NULL
    );
    CREATE INDEX message_labels_msgid ON message_labels(gm_msgid);
    """,
    # 4: the scheduler's memory across restarts (archiver.daemon.schedule): next run per account, the last
    # start/finish, and whether a failure alert is outstanding (so recovery can be announced once).
    4: """
    CREATE TABLE schedule_state (
        account TEXT PRIMARY KEY,
        schedule TEXT,
        next_run_at TEXT,
        last_started_at TEXT,
        last_finished_at TEXT,
        last_status TEXT,
        last_run_id INTEGER,
        failing INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL
    );
    """,
    # 5: what the search index last wrote of each blob's placements (a digest of its account, folder
    # and flags fields), so a refresh skips documents whose fields did not change: after a UIDVALIDITY
    # reset every placement is new, but a message's folders and flags are the same.
    5: """
    CREATE TABLE index_fields (
        blob_id TEXT PRIMARY KEY,
        generation TEXT NOT NULL,
        digest TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 6: web login sessions (web/sessions.py), so logout, a password change or `archiver sessions revoke`
    # ends them on the server. Only a hash of the cookie's token is stored; `credential` is a digest of the
    # user's password_hash at login; times are Unix seconds.
    6: """
    CREATE TABLE web_sessions (
        token_hash TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        credential TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_seen_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX web_sessions_user ON web_sessions(user);
    """,
    # 7: messages without a Message-ID by size, for the header look after a UIDVALIDITY reset
    # (archiver.backup.header_print): candidates in proportion to the matches, not to the archive.
    7: """
    CREATE INDEX messages_without_message_id ON messages(size) WHERE message_id IS NULL;
    """,
}


# A placement seen again (a killed run's upsert, a message back under the same UID) is revived, not duplicated.
# Parameters: folder_id, uidvalidity, uid, blob_id, flags, internaldate, size, first_seen_run.
UPSERT_PLACEMENT_SQL = (
    "INSERT INTO placements (folder_id, uidvalidity, uid, blob_id, flags, internaldate, size, first_seen_run) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (folder_id, uidvalidity, uid) DO UPDATE SET gone_since_run = NULL, flags = excluded.flags"
)


_FOLDER_COLUMNS = (
    "id, account_id, name, delimiter, special_use, uidvalidity, uidnext, highestmodseq, server_messages, gone_since_run"
)


@dataclass(frozen=True)
class FolderRecord:
    """The catalog's view of one folder of an account."""

    id: int
    account_id: int
    name: str
    delimiter: str | None
    special_use: str | None
    uidvalidity: int | None
    uidnext: int | None
    highestmodseq: int | None
    server_messages: int | None
    gone_since_run: int | None


@dataclass(frozen=True)
class PlacementRow:
    """A message in a folder, as the catalog knows it (read side)."""

    id: int
    folder: str
    delimiter: str | None
    uidvalidity: int
    uid: int | str
    blob_id: str
    flags: tuple[str, ...]
    internaldate: str | None
    size: int
    first_seen_run: int
    gone_since_run: int | None
    message_id: str | None
    subject: str | None
    sender: str | None
    date: str | None


@dataclass(frozen=True)
class NewPlacement:
    """A message just made durable in the blob store, to be recorded in a folder."""

    uid: int | str
    blob_id: str
    flags: tuple[str, ...]
    internaldate: str | None  # ISO 8601 with the server's offset
    size: int
    stored_size: int
    headers: HeaderSummary


@dataclass(frozen=True)
class RunTotals:
    """Counters of one run, added to the run row as batches commit."""

    messages_new: int = 0
    blobs_new: int = 0
    bytes_fetched: int = 0
    bytes_stored: int = 0
    flags_changed: int = 0
    messages_gone: int = 0


def encode_flags(flags: Iterable[str]) -> str:
    """Flags as one canonical string: sorted, space separated (IMAP flags hold no spaces)."""
    return " ".join(sorted(set(flags)))


def decode_flags(text: str) -> tuple[str, ...]:
    return tuple(text.split()) if text else ()


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


class Catalog:
    """One SQLite connection to the catalog of an archive."""

    FILENAME = "catalog.sqlite3"

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self.db = connection
        self.path = path

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

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        latest = max(MIGRATIONS)
        if version > latest:
            raise CatalogError(
                f"catalog {self.path} has schema {version}, newer than this archiver knows ({latest}): upgrade archiver"
            )
        for number in sorted(n for n in MIGRATIONS if n > version):
            script = MIGRATIONS[number]
            with self.transaction():
                for statement in _statements(script):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work (BEGIN IMMEDIATE, so writers queue instead of failing).

        SQLite failures (disk full, I/O error, a lock held too long) become one-line
        :class:`CatalogError`s; the transaction is rolled back, so the catalog stays as it was.
        """
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _catalog_error(self.path, exc) from exc
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException as exc:
            if self.db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _catalog_error(self.path, exc) from exc
            raise

    @property
    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    # -- accounts and runs --------------------------------------------------
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
        return self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()

    def run_errors(self, run_id: int) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM run_errors WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()

    # -- folders --------------------------------------------------------------
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

    # -- placements -------------------------------------------------------------
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
                cursor = self.db.execute(
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
                )
                new_placements += cursor.rowcount
            fetched = sum(item.size for item in batch)
            self.db.execute(
                "UPDATE runs SET messages_new = messages_new + ?, blobs_new = blobs_new + ?, "
                "bytes_fetched = bytes_fetched + ?, bytes_stored = bytes_stored + ? WHERE id = ?",
                (new_placements, new_blobs, fetched, stored, run_id),
            )
        return RunTotals(messages_new=new_placements, blobs_new=new_blobs, bytes_fetched=fetched, bytes_stored=stored)

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

    # -- point in time ----------------------------------------------------------------
    def run_at(self, account_id: int, when: str) -> int | None:
        """The last run of the account that started at or before ``when`` (ISO 8601, UTC).

        The archive's state "at time T" is the state after that run (its
        committed batches included, even if it was interrupted).
        """
        row = self.db.execute(
            "SELECT MAX(id) FROM runs WHERE account_id = ? AND started_at <= ?", (account_id, when)
        ).fetchone()
        return row[0]

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
        flags_sql = f"{FLAGS_AS_OF_SQL} AS flags" if as_of_flags else "p.flags"
        sql = (
            f"SELECT f.name AS folder, f.delimiter, p.id, p.uidvalidity, p.uid, p.blob_id, {flags_sql}, "
            "p.internaldate, p.size, p.first_seen_run, p.gone_since_run, m.message_id, m.subject, m.sender, m.date "
            "FROM placements p JOIN folders f ON f.id = p.folder_id JOIN messages m ON m.blob_id = p.blob_id "
            "WHERE f.account_id = ?"
        )
        params: list[object] = [run_id] if as_of_flags else []
        params.append(account_id)
        if folder is not None:
            sql += " AND f.name = ?"
            params.append(folder)
        condition, values = _as_of(run_id, expunged)
        sql += condition
        params += values
        sql += " ORDER BY f.name, p.internaldate, p.id"
        for row in self.db.execute(sql, params):
            yield PlacementRow(
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

    # -- search index (archiver.index) ------------------------------------------------
    # The index bookmarks (messages rowid, placement_changes seq); these read what lies past it.
    def index_high_water(self) -> tuple[int, int]:
        """(largest messages rowid, largest placement change seq): the catalog state right now."""
        rowid = self.db.execute("SELECT COALESCE(MAX(rowid), 0) FROM messages").fetchone()[0]
        seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM placement_changes").fetchone()[0]
        return rowid, seq

    def messages_for_index(self, after_rowid: int, upto_rowid: int, limit: int) -> list[sqlite3.Row]:
        """(rowid, blob_id, size) of messages added after a bookmark, oldest first."""
        return self.db.execute(
            "SELECT rowid, blob_id, size FROM messages WHERE rowid > ? AND rowid <= ? ORDER BY rowid LIMIT ?",
            (after_rowid, upto_rowid, limit),
        ).fetchall()

    def message_rows_for_index(self, blob_ids: Sequence[str]) -> list[sqlite3.Row]:
        """(rowid, blob_id, size) of the given blobs (those the catalog knows)."""
        rows: list[sqlite3.Row] = []
        for start in range(0, len(blob_ids), 500):
            chunk = list(blob_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows += self.db.execute(
                f"SELECT rowid, blob_id, size FROM messages WHERE blob_id IN ({marks})", chunk
            ).fetchall()
        return rows

    def placements_for_index(self, blob_ids: Sequence[str]) -> dict[str, list[tuple[str, str, str, str | None]]]:
        """Every placement (present or gone) of the blobs: (account, folder, flags, internaldate)."""
        result: dict[str, list[tuple[str, str, str, str | None]]] = {blob_id: [] for blob_id in blob_ids}
        for start in range(0, len(blob_ids), 500):
            chunk = list(blob_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                "SELECT p.blob_id, a.name, f.name, p.flags, p.internaldate FROM placements p "
                "JOIN folders f ON f.id = p.folder_id JOIN accounts a ON a.id = f.account_id "
                f"WHERE p.blob_id IN ({marks})",
                chunk,
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
        found: dict[str, str] = {}
        for start in range(0, len(blob_ids), 500):
            chunk = list(blob_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            found.update(
                self.db.execute(
                    f"SELECT blob_id, digest FROM index_fields WHERE generation = ? AND blob_id IN ({marks})",
                    (generation, *chunk),
                )
            )
        return found

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
        result: dict[str, sqlite3.Row] = {}
        for start in range(0, len(blob_ids), 500):
            chunk = list(blob_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                f"SELECT blob_id, date, sender, recipients, subject, size, message_id FROM messages "
                f"WHERE blob_id IN ({marks})",
                chunk,
            ):
                result[row["blob_id"]] = row
        return result

    # -- restore / export / import (archiver.restore.plan, archiver.files.export, archiver.files.importer) ---------
    _RESTORE_SELECT = (
        "SELECT f.name AS folder, f.delimiter, p.id, p.uidvalidity, p.uid, p.blob_id, p.flags, p.internaldate, "
        "p.size, p.first_seen_run, p.gone_since_run, m.message_id, m.subject, m.sender, m.date "
        "FROM placements p JOIN folders f ON f.id = p.folder_id JOIN messages m ON m.blob_id = p.blob_id "
    )

    def restore_placement(self, placement_id: int) -> PlacementRow | None:
        """One placement by id (present or gone), with what a restore needs."""
        row = self.db.execute(self._RESTORE_SELECT + "WHERE p.id = ?", (placement_id,)).fetchone()
        return None if row is None else _placement_row(row)

    def restore_placement_of_blob(self, blob_id: str, account_id: int | None) -> PlacementRow | None:
        """A placement of a blob (in one account if given): present ones first, then the newest."""
        sql = self._RESTORE_SELECT + "WHERE p.blob_id = ?"
        params: list[object] = [blob_id]
        if account_id is not None:
            sql += " AND f.account_id = ?"
            params.append(account_id)
        sql += " ORDER BY p.gone_since_run IS NOT NULL, p.id DESC LIMIT 1"
        row = self.db.execute(sql, params).fetchone()
        return None if row is None else _placement_row(row)

    def known_blob_ids(self, blob_ids: Sequence[str]) -> set[str]:
        """Which of these blobs the catalog already has (an import counts what it deduplicated)."""
        found: set[str] = set()
        for start in range(0, len(blob_ids), 500):
            chunk = list(blob_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT blob_id FROM messages WHERE blob_id IN ({marks})", chunk)
            found.update(r[0] for r in rows)
        return found

    # -- reports ------------------------------------------------------------------
    def account_rows(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM accounts ORDER BY name").fetchall()

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
        condition, values = _as_of(run_id)
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

    # -- web login sessions (web/sessions.py) -------------------------------
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


def _as_of(run_id: int | None, expunged: bool = False) -> tuple[str, list[object]]:
    """The placement filter "in the folder after run R" (None: now), or with ``expunged`` "gone from it by then"."""
    if expunged and run_id is None:
        return " AND p.gone_since_run IS NOT NULL", []
    if expunged:
        return " AND p.first_seen_run <= ? AND p.gone_since_run <= ?", [run_id, run_id]
    if run_id is None:
        return " AND p.gone_since_run IS NULL", []
    return " AND p.first_seen_run <= ? AND (p.gone_since_run IS NULL OR p.gone_since_run > ?)", [run_id, run_id]


def _catalog_error(path: Path, exc: sqlite3.Error) -> CatalogError:
    """A clear line for a failed catalog write; SQLITE_FULL gets the same words as a full blob store."""
    text = str(exc)
    if "disk is full" in text or getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL":
        return CatalogError(f"disk full while writing the catalog {path}: free some space and run again")
    return CatalogError(f"cannot write the catalog {path}: {text}")


def _placement_row(row: sqlite3.Row) -> PlacementRow:
    """A restore-section row as a PlacementRow (same columns as placements_as_of selects)."""
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


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (no ';' inside literals; trigger bodies kept whole)."""
    statements: list[str] = []
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \n;"):
        statements.append(pending.strip())
    return statements
