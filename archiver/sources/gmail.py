"""Gmail (X-GM-EXT-1): one message, many labels, stored once.

Gmail shows one message in ``[Gmail]/All Mail`` and again in a folder per
label, each with its own UID; ``X-GM-MSGID`` is the same in all of them.  When
the server announces ``X-GM-EXT-1`` the backup

* syncs the ``\\All`` folder first (the source of truth) and records each
  placement's ``X-GM-MSGID`` and ``X-GM-LABELS`` (``message_labels``, catalog
  migration 3);
* for a label folder, looks up the new UIDs' ``X-GM-MSGID`` among the
  account's known messages and records a placement pointing at the same blob
  without downloading the body again.

Servers without the extension get the same "no second download" through the
header fingerprint (:mod:`archiver.backup.fingerprint`).  The parsing here is
pure and unit-tested on recorded responses; the SQL takes the catalog.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from imapclient import imap_utf7

from archiver.catalog import Catalog

ALL_MAIL_SPECIAL_USE = "\\All"


def parse_labels(value: object) -> tuple[str, ...]:
    """X-GM-LABELS as imapclient's parser returns it → sorted, decoded label names.

    Labels come as atoms, quoted strings or literals, in modified UTF-7; system
    labels keep their backslash (``\\Inbox``, ``\\Important``).
    """
    if value is None:
        return ()
    if isinstance(value, bytes | str | int):
        value = (value,)
    labels: set[str] = set()
    for item in value:  # type: ignore[union-attr]
        if isinstance(item, int):
            labels.add(str(item))
            continue
        raw = item if isinstance(item, bytes) else str(item).encode()
        try:
            text = imap_utf7.decode(raw)
        except Exception:
            text = raw.decode("utf-8", "replace")
        if text:
            labels.add(text)
    return tuple(sorted(labels))


def encode_labels(labels: Iterable[str]) -> str:
    """Labels as one text column: newline separated (labels may contain spaces, never newlines)."""
    return "\n".join(sorted(set(labels)))


def decode_labels(text: str | None) -> tuple[str, ...]:
    return tuple(text.split("\n")) if text else ()


def sync_order(folders: list, special_use_of=lambda f: f.special_use) -> list:
    """Folders with ``\\All`` first, so label folders find their messages already archived."""
    return sorted(folders, key=lambda f: special_use_of(f) != ALL_MAIL_SPECIAL_USE)


def blobs_by_gm_msgid(catalog: Catalog, account_id: int, msgids: Iterable[int]) -> dict[int, str]:
    """gm_msgid → blob id for those the account's catalog already knows."""
    wanted = sorted(set(msgids))
    found: dict[int, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = catalog.db.execute(
            "SELECT l.gm_msgid, p.blob_id FROM message_labels l JOIN placements p ON p.id = l.placement_id "
            f"JOIN folders f ON f.id = p.folder_id WHERE f.account_id = ? AND l.gm_msgid IN ({marks})",
            (account_id, *chunk),
        )
        for row in rows:
            found[row[0]] = row[1]
    return found


def record_labels(
    catalog: Catalog, folder_id: int, uidvalidity: int, by_uid: Mapping[int, tuple[int | None, tuple[str, ...]]]
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
