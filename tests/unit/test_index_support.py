"""The test archives are built the way a backup records fetched mail (tests/fixtures/archives.py)."""

from __future__ import annotations

from archiver.archive import Archive
from tests.fixtures.archives import add_messages


def test_add_messages_records_placements(archive: Archive) -> None:
    raw = b"From: a@example.org\r\nSubject: hello\r\n\r\nbody\r\n"
    add_messages(archive, "acct", [("INBOX", raw, ("\\Seen",), None), ("Archive", raw, (), None)])
    blob_id = archive.store.put_batch([raw])[0].blob_id
    placements = archive.catalog.placements_for_index([blob_id])[blob_id]
    assert sorted((a, f, flags) for a, f, flags, _ in placements) == [
        ("acct", "Archive", ""),
        ("acct", "INBOX", "\\Seen"),
    ]
    assert archive.store.get(blob_id) == raw
