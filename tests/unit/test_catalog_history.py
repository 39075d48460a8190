"""The catalog answers "what did this folder look like after run N" with the flags of that moment."""

from __future__ import annotations

from archiver.catalog import Catalog, NewPlacement
from archiver.mail.headers import summarize_headers

RAW = b"Message-ID: <one@example.org>\r\nSubject: hello\r\n\r\nbody\r\n"


def test_folder_page_as_of_a_run_shows_the_flags_of_that_run(tmp_path):
    with Catalog.open(tmp_path) as catalog:
        account = catalog.ensure_account("acct", "imap")
        first = catalog.start_run(account)
        folder = catalog.ensure_folder(account, "INBOX", "/", None, first)
        placement = NewPlacement(7, "ab" * 32, (), "2024-01-02T03:04:05+00:00", len(RAW), 40, summarize_headers(RAW))
        catalog.add_placements(first, folder.id, 1, [placement])
        second = catalog.start_run(account)
        assert catalog.update_flags(second, folder.id, 1, {7: ("\\Flagged", "\\Seen")}) == 1
        third = catalog.start_run(account)
        assert catalog.update_flags(third, folder.id, 1, {7: ("\\Seen",)}) == 1

        def flags_after(run_id: int | None) -> str:
            [row] = catalog.web_folder_page(folder.id, before=None, limit=10, run_id=run_id)
            return row["flags"]

        assert flags_after(first) == ""
        assert set(flags_after(second).split()) == {"\\Flagged", "\\Seen"}
        assert flags_after(third) == "\\Seen"
        assert flags_after(None) == "\\Seen"


def test_a_revived_placement_keeps_the_flags_it_had_before(tmp_path):
    """Marked gone, then seen again under the same UID with other flags: "as of" the first run still says the old."""
    with Catalog.open(tmp_path) as catalog:
        account = catalog.ensure_account("acct", "pop3")
        first = catalog.start_run(account)
        folder = catalog.ensure_folder(account, "INBOX", None, None, first)

        def placement(flags: tuple[str, ...]) -> NewPlacement:
            return NewPlacement("uidl-7", "cd" * 32, flags, None, len(RAW), 40, summarize_headers(RAW))

        catalog.add_placements(first, folder.id, 1, [placement(("\\Seen",))])
        second = catalog.start_run(account)
        assert catalog.mark_placements_gone(second, folder.id, 1, ["uidl-7"]) == 1
        third = catalog.start_run(account)
        catalog.add_placements(third, folder.id, 1, [placement(("\\Flagged",))])

        def flags_after(run_id: int | None) -> str | None:
            rows = catalog.web_folder_page(folder.id, before=None, limit=10, run_id=run_id)
            return rows[0]["flags"] if rows else None

        assert flags_after(first) == "\\Seen"
        assert flags_after(third) == flags_after(None) == "\\Flagged"
