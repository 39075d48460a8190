"""The catalog's schema: numbered migrations, applied in order, never edited once released.

``PRAGMA user_version`` records the last migration applied, so an existing archive
opens unchanged and an older one is brought forward by the scripts after its number.
A new table or index is a new number at the end; changing a released script would
leave archives made with the old one in a state no code expects.

``placements.uid`` is declared without a type on purpose: it holds the IMAP UID
(an integer) or, for POP3, the UIDL (text, kept verbatim with leading zeros).
"""

from __future__ import annotations

import sqlite3

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
    # 3: sync fidelity (archiver.catalog.history, .labels). flag_history: a placement's flags as of each run in which
    # they changed (the first row holds the flags it was first seen with); message_labels: Gmail labels.
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
    # 4: the scheduler's memory across restarts (archiver.catalog.schedule_state): next run per account, the last
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


def statements(script: str) -> list[str]:
    """Split a migration script into statements (no ';' inside literals; trigger bodies kept whole)."""
    found: list[str] = []
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                found.append(pending.strip())
            pending = ""
    if pending.strip(" \n;"):
        found.append(pending.strip())
    return found
