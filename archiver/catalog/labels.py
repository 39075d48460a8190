"""Gmail labels and X-GM-MSGID per placement (``message_labels``, migration 3).

Gmail shows one message in ``[Gmail]/All Mail`` and in a folder per label, each
with its own UID and the same ``X-GM-MSGID``; recording the id lets a label
folder's new UIDs point at the blob already archived from All Mail.  Reading the
labels off the wire is :mod:`archiver.sources.gmail`'s job; this module stores them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from archiver.catalog import Catalog
from archiver.catalog.connection import select_in


def encode_labels(labels: Iterable[str]) -> str:
    """Labels as one text column: newline separated (labels may contain spaces, never newlines)."""
    return "\n".join(sorted(set(labels)))


def decode_labels(text: str | None) -> tuple[str, ...]:
    return tuple(text.split("\n")) if text else ()


def blobs_by_gm_msgid(catalog: Catalog, account_id: int, msgids: Iterable[int]) -> dict[int, str]:
    """gm_msgid → blob id for those the account's catalog already knows."""
    rows = select_in(
        catalog.db,
        "SELECT l.gm_msgid, p.blob_id FROM message_labels l JOIN placements p ON p.id = l.placement_id "
        "JOIN folders f ON f.id = p.folder_id WHERE f.account_id = ? AND l.gm_msgid IN ({marks})",
        sorted(set(msgids)),
        before=(account_id,),
    )
    return {row[0]: row[1] for row in rows}


def record_labels(
    catalog: Catalog,
    folder_id: int,
    uidvalidity: int,
    by_uid: Mapping[int, tuple[int | None, tuple[str, ...]]],
) -> int:
    """Store (gm_msgid, labels) for placements of a folder; returns how many rows changed."""
    changed = 0
    with catalog.transaction():
        for uid, (msgid, labels) in by_uid.items():
            row = catalog.db.execute(
                "SELECT id FROM placements WHERE folder_id = ? AND uidvalidity = ? AND uid = ?",
                (folder_id, uidvalidity, uid),
            ).fetchone()
            if row is None:
                continue
            changed += catalog.db.execute(
                "INSERT INTO message_labels (placement_id, gm_msgid, labels) VALUES (?, ?, ?) "
                "ON CONFLICT (placement_id) DO UPDATE SET gm_msgid = COALESCE(excluded.gm_msgid, gm_msgid), "
                "labels = excluded.labels WHERE labels != excluded.labels OR gm_msgid IS NOT excluded.gm_msgid",
                (row[0], msgid, encode_labels(labels)),
            ).rowcount
    return changed


def labels_of_blob(catalog: Catalog, account_id: int, blob_id: str) -> tuple[str, ...]:
    """Every label recorded for a message of the account (the union over its placements)."""
    rows = catalog.db.execute(
        "SELECT l.labels FROM message_labels l JOIN placements p ON p.id = l.placement_id "
        "JOIN folders f ON f.id = p.folder_id WHERE f.account_id = ? AND p.blob_id = ?",
        (account_id, blob_id),
    )
    labels: set[str] = set()
    for row in rows:
        labels.update(decode_labels(row[0]))
    return tuple(sorted(labels))
