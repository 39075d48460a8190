"""Flag history: what a placement's flags were after any run.

``placements.flags`` always holds the flags the server showed at the last
look.  Rows in ``flag_history`` (catalog migration 3) are written only when the
flags change, so a mailbox whose flags never move costs nothing: the first
change of a placement writes two rows, the flags it was first seen with (at its
``first_seen_run``) and the new ones (at the current run); later changes write
one.  "Flags as of run R" is then the newest history row at or before R, or
``placements.flags`` when the placement has no history.

Plain SQL on the catalog's connection, called inside the caller's transaction
(this module imports nothing from :mod:`archiver.catalog`, which calls it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

# Correlated sub-select for a query over ``placements p``; takes one parameter, the run id.
FLAGS_AS_OF_SQL = (
    "COALESCE((SELECT h.flags FROM flag_history h WHERE h.placement_id = p.id AND h.run_id <= ? "
    "ORDER BY h.run_id DESC LIMIT 1), p.flags)"
)


def record_flag_changes(
    db: sqlite3.Connection, run_id: int, folder_id: int, uidvalidity: int, flags_by_uid: Mapping[int | str, str]
) -> int:
    """Apply new flags (already canonical strings) to placements, writing history; returns how many changed.

    Must run inside a transaction: the history rows and the placement update commit together.
    """
    changed = 0
    for uid, flags in flags_by_uid.items():
        row = db.execute(
            "SELECT id, flags, first_seen_run FROM placements WHERE folder_id = ? AND uidvalidity = ? AND uid = ?",
            (folder_id, uidvalidity, uid),
        ).fetchone()
        if row is None or row[1] == flags:
            continue
        placement_id, old_flags, first_seen_run = row[0], row[1], row[2]
        db.execute(
            "INSERT OR IGNORE INTO flag_history (placement_id, run_id, flags) VALUES (?, ?, ?)",
            (placement_id, first_seen_run, old_flags),
        )
        db.execute(
            "INSERT INTO flag_history (placement_id, run_id, flags) VALUES (?, ?, ?) "
            "ON CONFLICT (placement_id, run_id) DO UPDATE SET flags = excluded.flags",
            (placement_id, run_id, flags),
        )
        db.execute("UPDATE placements SET flags = ? WHERE id = ?", (flags, placement_id))
        changed += 1
    return changed


def record_revived_flag_changes(
    db: sqlite3.Connection, run_id: int, folder_id: int, uidvalidity: int, flags_by_uid: Mapping[int | str, str]
) -> int:
    """:func:`record_flag_changes` for the UIDs of a batch about to be upserted that are already there.

    A new batch's UIDs are almost never in the catalog yet (a placement marked gone by mistake, a
    POP3 key back in the maildrop): one query per 500 UIDs finds those, instead of one per message.
    """
    uids = list(flags_by_uid)
    existing: list[int | str] = []
    for start in range(0, len(uids), 500):
        chunk = uids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        existing += [
            row[0]
            for row in db.execute(
                f"SELECT uid FROM placements WHERE folder_id = ? AND uidvalidity = ? AND uid IN ({marks})",
                (folder_id, uidvalidity, *chunk),
            )
        ]
    return record_flag_changes(db, run_id, folder_id, uidvalidity, {uid: flags_by_uid[uid] for uid in existing})


def flag_timeline(db: sqlite3.Connection, placement_id: int) -> list[tuple[int, str, str]]:
    """(run id, run start, flags) for each run in which the placement's flags were set; oldest first.

    A placement whose flags never changed has one entry: its first run and its current flags.
    """
    rows = db.execute(
        "SELECT h.run_id, r.started_at, h.flags FROM flag_history h JOIN runs r ON r.id = h.run_id "
        "WHERE h.placement_id = ? ORDER BY h.run_id",
        (placement_id,),
    ).fetchall()
    if rows:
        return [(row[0], row[1], row[2]) for row in rows]
    row = db.execute(
        "SELECT p.first_seen_run, r.started_at, p.flags FROM placements p JOIN runs r ON r.id = p.first_seen_run "
        "WHERE p.id = ?",
        (placement_id,),
    ).fetchone()
    return [] if row is None else [(row[0], row[1], row[2])]


def flags_as_of(db: sqlite3.Connection, placement_id: int, run_id: int) -> str | None:
    """The placement's flags after run ``run_id`` (canonical string), None for an unknown placement."""
    row = db.execute(f"SELECT {FLAGS_AS_OF_SQL} FROM placements p WHERE p.id = ?", (run_id, placement_id)).fetchone()
    return None if row is None else row[0]
