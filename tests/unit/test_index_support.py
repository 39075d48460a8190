"""Building archives directly (blob store → catalog), the way a backup records fetched mail.

The index tests and ``bench/search.py`` need archives of known content without
a mail server in the loop; :func:`add_messages` goes through the same
``BlobStore.put_batch`` and ``Catalog.add_placements`` calls as a backup run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from archiver.archive import Archive
from archiver.catalog import NewPlacement
from archiver.config import ArchiveConfig
from archiver.mail.headers import summarize_headers

Item = tuple[str, bytes, tuple[str, ...], datetime | None]  # folder, raw, flags, internaldate


def open_archive(path: Path) -> Archive:
    return Archive(ArchiveConfig(path=path))


def add_messages(archive: Archive, account: str, items: Iterable[Item], batch: int = 500) -> int:
    """Record ``items`` as one run of ``account``; returns the run id."""
    catalog = archive.catalog
    account_id = catalog.ensure_account(account, "imap")
    run_id = catalog.start_run(account_id)
    known = catalog.folders(account_id)
    next_uid: dict[str, int] = defaultdict(lambda: 1)
    for name, record in known.items():
        next_uid[name] = (catalog.db.execute("SELECT COALESCE(MAX(uid), 0) FROM placements WHERE folder_id = ?",
                                             (record.id,)).fetchone()[0]) + 1  # fmt: skip
    pending: dict[str, list[Item]] = defaultdict(list)

    def flush(folder: str) -> None:
        group = pending.pop(folder, [])
        if not group:
            return
        record = catalog.ensure_folder(account_id, folder, "/", None, run_id)
        stored = archive.store.put_batch([raw for _, raw, _, _ in group])
        placements = []
        for (_, raw, flags, internaldate), blob in zip(group, stored, strict=True):
            placements.append(
                NewPlacement(
                    uid=next_uid[folder],
                    blob_id=blob.blob_id,
                    flags=tuple(flags),
                    internaldate=(internaldate or datetime(2020, 1, 1, tzinfo=UTC)).isoformat(),
                    size=len(raw),
                    stored_size=blob.stored_size,
                    headers=summarize_headers(raw),
                )
            )
            next_uid[folder] += 1
        catalog.add_placements(run_id, record.id, 1, placements)

    for item in items:
        pending[item[0]].append(item)
        if len(pending[item[0]]) >= batch:
            flush(item[0])
    for folder in list(pending):
        flush(folder)
    catalog.finish_run(run_id, "ok", 0, 0, 0)
    return run_id


def test_add_messages_records_placements(tmp_path: Path) -> None:
    raw = b"From: a@example.org\r\nSubject: hello\r\n\r\nbody\r\n"
    with open_archive(tmp_path) as archive:
        add_messages(archive, "acct", [("INBOX", raw, ("\\Seen",), None), ("Archive", raw, (), None)])
        blob_id = archive.store.put_batch([raw])[0].blob_id
        placements = archive.catalog.placements_for_index([blob_id])[blob_id]
        assert sorted((a, f, flags) for a, f, flags, _ in placements) == [
            ("acct", "Archive", ""),
            ("acct", "INBOX", "\\Seen"),
        ]
        assert archive.store.get(blob_id) == raw
