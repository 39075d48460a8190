"""Catalog lookups by a list of values answer for every value, however many (one IN list binds at most 500)."""

from __future__ import annotations

from archiver.catalog import Catalog, NewPlacement
from archiver.mail.headers import summarize_headers


def _message(number: int) -> NewPlacement:
    raw = f"Message-ID: <{number}@example.org>\r\nSubject: n{number}\r\n\r\nbody\r\n".encode()
    return NewPlacement(number, f"{number:064x}", ("\\Seen",), None, len(raw), len(raw), summarize_headers(raw))


def test_lookups_by_many_values_find_every_one_across_chunks(tmp_path):
    with Catalog.open(tmp_path) as catalog:
        account = catalog.ensure_account("acct", "imap")
        run = catalog.start_run(account)
        folder = catalog.ensure_folder(account, "INBOX", "/", None, run)
        catalog.add_placements(run, folder.id, 1, [_message(n) for n in range(1, 1201)])
        asked = [f"{n:064x}" for n in range(1, 2401, 2)]  # 1,200 asked, 600 of them archived, over three chunks

        assert catalog.known_blob_ids(asked) == {f"{n:064x}" for n in range(1, 1201, 2)}
        assert len(catalog.message_rows_for_index(asked)) == 600
        assert sorted(catalog.hit_details(asked)) == sorted(f"{n:064x}" for n in range(1, 1201, 2))
        copies = catalog.copies_by_message_id(account, [f"<{n}@example.org>" for n in range(600, 1300)])
        assert sorted(int(copy.blob_id, 16) for copy in copies) == list(range(600, 1201))
