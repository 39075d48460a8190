"""The search index end to end on archives built through the blob store and catalog.

Every query is checked for the exact set of messages it returns (finds what it
should *and not more*), by the marker each test message carries.
"""

from __future__ import annotations

import shutil
import sys
import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from archiver import index
from archiver.archive import Archive
from archiver.index import ALL_ACCOUNTS as ALL
from archiver.index import batches as index_batches
from archiver.index import writer as index_writer
from archiver.index.documents import to_minutes
from tests.fixtures.archives import add_messages
from tests.fixtures.hostile_mail import broken_charset_with_pdf


def mail(marker: str, sender: str, to: str, subject: str, body: str, date: str, **extra: object) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = date
    message["Message-ID"] = f"<{marker}@test.example>"
    for name, value in extra.get("headers", {}).items():  # type: ignore[union-attr]
        message[name] = value
    message.set_content(f"{body}\n\nmarker {marker}\n")
    for filename, data in extra.get("attachments", []):  # type: ignore[union-attr]
        message.add_attachment(data, maintype="application", subtype="octet-stream", filename=filename)
    return message.as_bytes()


MESSAGES = {
    "m1": mail("m1", "Alice Martin <alice.martin@mail.example.org>", "bob@example.com", "Quarterly budget review",
               "The running costs went up; see the attached spreadsheet.", "Mon, 15 Mar 2021 09:00:00 +0000",
               attachments=[("budget-2021.xlsx", b"PK\x03\x04binary")]),
    "m2": mail("m2", "Élodie Dupré <elodie@exemple.fr>", "Alice <alice.martin@mail.example.org>",
               "Réunion de l'équipe", "Les réunions auront lieu à Montréal. Nous mangerons des crêpes avec vous.",
               "Sun, 02 May 2021 18:30:00 +0200"),
    "m3": mail("m3", "Иван Петров <ivan@example.ru>", "sales@example.ru", "Отчёт за март",
               "Привет, вот отчёт о продажах.", "Tue, 01 Dec 2020 08:00:00 +0300",
               headers={"List-Id": "Sales team <sales.lists.example.ru>"}),
    "m4": mail("m4", "田中 <tanaka@example.jp>", "team@example.jp", "会議の議事録", "東京都で会議を開催しました。",
               "Mon, 10 Jan 2022 12:00:00 +0900"),
    "m5": broken_charset_with_pdf("zeppelin"),
    "m6": mail("m6", "carol@photos.example.net", "dave@example.com", "Holiday photos", "Pictures from the beach.",
               "Sat, 20 Jul 2019 10:00:00 +0000", attachments=[("beach.jpg", b"\xff\xd8" + b"x" * (6 * 2**20))]),
    "m7": mail("m7", "eve@example.com", "frank@example.com", "Typing test",
               "the quick brown fox jumps over the lazy dog", "Wed, 05 Jun 2019 10:00:00 +0000"),
    "m8": mail("m8", "frank@example.com", "eve@example.com", "Re: Typing test",
               "the dog is quick and the brown fox is not; a < b & c", "Thu, 06 Jun 2019 10:00:00 +0000"),
}  # fmt: skip
WORK = [("INBOX", "m1", ("\\Seen", "\\Flagged")), ("Travail/Équipe", "m2", ()), ("INBOX", "m3", ("\\Seen",)),
        ("Archive", "m4", ("\\Seen",)), ("INBOX", "m5", ("\\Seen",)), ("Personal", "m6", ("\\Seen",))]  # fmt: skip
HOME = [("Archive", "m1", ("\\Seen",)), ("INBOX", "m7", ()), ("INBOX", "m8", ("\\Seen",))]

EXPECTED = {
    "budget": {"m1"},
    "running": {"m1"},
    "from:alice": {"m1"},
    "from:example.org": {"m1"},
    "from:alice.martin@mail.example.org": {"m1"},
    "to:alice": {"m2"},
    "from:dupre": {"m2"},
    "reunion": {"m2"},
    "Montreal": {"m2"},
    "crepe": {"m2"},
    "отчёт": {"m3"},
    "продажах": {"m3"},
    "from:петров": {"m3"},
    "list:sales": {"m3"},
    "東京": {"m4"},
    "subject:議事録": {"m4"},
    "zeppelin": {"m5"},
    "zeppel*": {"m5"},
    "filename:facture.pdf": {"m5"},
    "filename:beach": {"m6"},
    "msgid:broken-1@example.org": {"m5"},
    "has:attachment": {"m1", "m5", "m6"},
    "size:>5M": {"m6"},
    "is:unread": {"m2", "m7"},
    "is:flagged": {"m1"},
    "date:2021-03": {"m1", "m5"},
    "date:2021-03..2021-05": {"m1", "m2", "m5"},
    "before:2019-07-01": {"m7", "m8"},
    "after:2022-01-01": {"m4"},
    "folder:inbox": {"m1", "m3", "m5", "m7", "m8"},
    'folder:"Travail/Équipe"': {"m2"},
    "folder:trav*": {"m2"},
    "account:home": {"m1", "m7", "m8"},
    "folder:work/inbox": {"m1", "m3", "m5"},
    '"quick brown"': {"m7"},
    "quick brown": {"m7", "m8"},
    "jumping": {"m7"},
    "quick OR crepe": {"m2", "m7", "m8"},
    "fox -lazy": {"m8"},
    "fox AND NOT lazy": {"m8"},
    "(budget OR zeppelin) has:attachment": {"m1", "m5"},
    "subject:test": {"m7", "m8"},
    "nosuchwordanywhere": set(),
}


def markers(archive: Archive, query: str, **kwargs: object) -> set[str]:
    kwargs.setdefault("accounts", ALL)
    page = index.search(archive, query, page_size=100, snippets=False, **kwargs)  # type: ignore[arg-type]
    assert page.total == len(page.hits)
    by_blob = {blob: name for name, blob in BLOB_IDS.items()}
    return {by_blob[h.blob_id] for h in page.hits}


BLOB_IDS: dict[str, str] = {}


def _items(placements: list[tuple[str, str, tuple[str, ...]]]) -> list:
    return [(folder, MESSAGES[name], flags, datetime(2023, 1, 1, tzinfo=UTC)) for folder, name, flags in placements]


@pytest.fixture
def archive(archive: Archive) -> Archive:
    """The shared empty archive, filled with the WORK and HOME messages of this module."""
    add_messages(archive, "work", _items(WORK))
    add_messages(archive, "home", _items(HOME))
    for name, raw in MESSAGES.items():
        BLOB_IDS[name] = archive.store.put_batch([raw])[0].blob_id
    return archive


def test_every_field_query_finds_exactly_its_messages(archive: Archive) -> None:
    report = index.update_index(archive)
    assert report.indexed == 8 and report.rebuilt
    wrong = {q: (markers(archive, q), want) for q, want in EXPECTED.items() if markers(archive, q) != want}
    assert wrong == {}


def test_accounts_filter_sort_paging_and_snippets(archive: Archive) -> None:
    index.update_index(archive)
    assert markers(archive, "quick OR budget", accounts=["home"]) == {"m1", "m7", "m8"}
    assert markers(archive, "zeppelin", accounts=["home"]) == set()
    newest = index.search(archive, "has:attachment", accounts=ALL, sort="date")
    assert [h.blob_id for h in newest.hits] == [BLOB_IDS["m1"], BLOB_IDS["m5"], BLOB_IDS["m6"]]
    second = index.search(archive, "has:attachment", accounts=ALL, sort="date", page=2, page_size=2)
    assert [h.blob_id for h in second.hits] == [BLOB_IDS["m6"]] and second.pages == 2
    hit = index.search(archive, "lazy OR quick", accounts=ALL, sort="date").hits[0]
    assert hit.blob_id == BLOB_IDS["m8"] and "a &lt; b &amp; c" in hit.snippet_html
    assert "<mark>quick</mark>" in hit.snippet_html
    assert hit.subject == "Re: Typing test" and hit.folders == (("home", "INBOX"),)
    assert index.search(archive, "budget", accounts=ALL).hits[0].folders == (("home", "Archive"), ("work", "INBOX"))
    french = index.search(archive, "réunion", accounts=ALL).hits[0].snippet_html
    assert "<mark>réunions</mark>" in french


def test_incremental_new_messages_and_placement_changes(archive: Archive) -> None:
    index.update_index(archive)
    extra = mail(
        "m9", "gina@example.com", "me@example.com", "Late arrival", "xylophone lessons", "Fri, 01 Jan 2021 0:0:0 +0000"
    )
    add_messages(archive, "work", [("INBOX", extra, ("\\Seen",), None)])
    assert index.search(archive, "xylophone", accounts=ALL).total == 0  # committed to the catalog, not yet indexed
    assert index.index_status(archive)["behind"]["messages"] == 1
    report = index.update_index(archive)
    assert report.indexed == 1 and index.search(archive, "xylophone", accounts=ALL).total == 1
    # m2 gets flagged on the server, m7 is copied to a new folder: only those documents are rewritten.
    catalog = archive.catalog
    work_id = catalog.account_id("work")
    folder = catalog.folders(work_id)["Travail/Équipe"]
    run = catalog.start_run(work_id)
    assert catalog.update_flags(run, folder.id, 1, {1: ("\\Flagged", "\\Seen")}) == 1
    add_messages(archive, "home", [("Copies", MESSAGES["m7"], (), None)])
    report = index.update_index(archive)
    assert report.indexed == 0 and report.refreshed == 2
    assert markers(archive, "is:flagged") == {"m1", "m2"}
    assert markers(archive, "is:unread") == {"m7"}
    assert markers(archive, "folder:copies") == {"m7"}
    assert index.update_index(archive).refreshed == 0  # nothing pending: cheap no-op
    assert catalog.db.execute("SELECT COUNT(*) FROM placement_changes").fetchone()[0] == 0


def test_crash_between_batches_heals_without_duplicates(archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_writer, "BATCH", 2)
    monkeypatch.setattr(index_writer, "COMMIT_DOCS", 2)  # a commit (a bookmark) every two messages
    real = index_batches.document_for
    calls = {"n": 0}

    def flaky(store, message):  # dies while indexing the 5th message: two batches are committed
        calls["n"] += 1
        if calls["n"] == 5:  # a BaseException, as a kill is: an Exception would only cost that one message
            raise KeyboardInterrupt("power cut")
        return real(store, message)

    monkeypatch.setattr(index_batches, "document_for", flaky)
    with pytest.raises(KeyboardInterrupt):
        index.update_index(archive)
    status = index.index_status(archive)
    assert status["documents"] == 4 and status["behind"]["messages"] == 4
    monkeypatch.setattr(index_batches, "document_for", real)
    index.update_index(archive)
    assert index.index_status(archive)["documents"] == 8
    assert markers(archive, "NOT nosuchword") == set(MESSAGES)


def test_deleted_index_is_rebuilt_with_the_same_results(archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    index.update_index(archive)
    before = {q: markers(archive, q) for q in EXPECTED}
    shutil.rmtree(archive.root / "index")
    with pytest.raises(index.SearchIndexError):
        index.search(archive, "budget", accounts=ALL)
    monkeypatch.setattr(index_writer, "PARALLEL_FROM", 1)  # exercise the worker processes too
    assert index.update_index(archive, procs=2).indexed == 8
    assert {q: markers(archive, q) for q in EXPECTED} == before
    report = index.reindex(archive, procs=2)
    assert report.indexed == 8
    assert {q: markers(archive, q) for q in EXPECTED} == before
    assert len([p for p in (archive.root / "index").iterdir() if p.name.startswith("g-")]) == 1
    # Workers that close a segment after every job (what a large rebuild does before its pool fills).
    monkeypatch.setattr(sys.modules["archiver.index.parallel"], "SEGMENT_AT", 0.0)
    assert index.reindex(archive, procs=2).indexed == 8
    assert {q: markers(archive, q) for q in EXPECTED} == before
    assert index.index_status(archive)["documents"] == 8


def test_searches_keep_working_while_the_index_is_rebuilt(archive: Archive) -> None:
    index.update_index(archive)
    errors: list[BaseException] = []
    totals: set[int] = set()
    done = threading.Event()

    def searcher() -> None:
        while not done.is_set():
            try:
                totals.add(index.search(archive, "fox OR budget", accounts=ALL, snippets=False).total)
            except BaseException as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=searcher)
    thread.start()
    try:
        for _ in range(3):
            index.reindex(archive, procs=1)
    finally:
        done.set()
        thread.join()
    assert errors == [] and totals == {3}


def test_unreadable_blob_is_indexed_by_its_folders_and_recorded(archive: Archive) -> None:
    archive.store.path_of(BLOB_IDS["m7"]).unlink()
    report = index.update_index(archive)
    assert report.problems >= 1
    assert markers(archive, "folder:home/inbox") == {"m7", "m8"}
    row = archive.catalog.db.execute("SELECT problems FROM index_problems WHERE blob_id = ?", (BLOB_IDS["m7"],))
    assert "blob unreadable" in row.fetchone()[0]


def test_date_window_gives_the_same_pages_as_a_full_sort(archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    index_search = sys.modules["archiver.index.searcher"]
    index.update_index(archive)
    queries = ["NOT nosuchword", "the OR fox OR budget", "has:attachment OR is:unread"]
    full = {
        (q, size, page): index.search(archive, q, accounts=ALL, sort="date", page=page, page_size=size, snippets=False)
        for q in queries
        for size in (1, 2, 3)
        for page in (1, 2)
    }
    monkeypatch.setattr(index_search, "WINDOW_FROM", 0)
    cutoff = to_minutes(datetime(2021, 1, 1))
    monkeypatch.setattr(index_search, "_recent_cutoff", lambda searcher, fraction: cutoff)
    collected: list[str] = []
    real_collect = index_search._collect

    def spy(searcher, query, need, sort, restrict):
        collected.append("window" if "NumericRange('date'" in repr(query) else "full")
        return real_collect(searcher, query, need, sort, restrict)

    monkeypatch.setattr(index_search, "_collect", spy)
    monkeypatch.setattr(index_search, "matching_docs", lambda searcher, query: None)  # Whoosh's path, windowed
    windowed_pages = 0
    for (q, size, page), expected in full.items():
        collected.clear()
        got = index.search(archive, q, accounts=ALL, sort="date", page=page, page_size=size, snippets=False)
        assert [h.blob_id for h in got.hits] == [h.blob_id for h in expected.hits], (q, size, page)
        windowed_pages += collected == ["window"]
        assert got.total >= expected.total
    assert windowed_pages >= 6  # most pages were answered from the window alone


def test_no_change_update_does_not_open_the_index(archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scheduled no-change backup must stay cheap: the hint beside the live generation answers it."""
    index.update_index(archive)

    def must_not_open(_root: Path) -> None:
        raise AssertionError("the index was opened although nothing changed")

    with monkeypatch.context() as patched:
        patched.setattr(index_writer, "open_live", must_not_open)
        assert index.update_index(archive).indexed == 0
    # A new message, then a flag change: each makes the hint stale, so the index is opened and updated.
    add_messages(
        archive,
        "work",
        [
            (
                "INBOX",
                mail("m10", "a@b.example", "c@d.example", "Hint", "ocarina", "Fri, 01 Jan 2021 0:0:0 +0000"),
                (),
                None,
            )
        ],
    )
    assert index.update_index(archive).indexed == 1 and index.search(archive, "ocarina", accounts=ALL).total == 1
    catalog = archive.catalog
    work_id = catalog.account_id("work")
    folder = catalog.folders(work_id)["INBOX"]
    uid = catalog.db.execute("SELECT MAX(uid) FROM placements WHERE folder_id = ?", (folder.id,)).fetchone()[0]
    assert catalog.update_flags(catalog.start_run(work_id), folder.id, 1, {uid: ("\\Flagged",)}) == 1
    assert index.update_index(archive).refreshed == 1
    assert index.search(archive, "ocarina is:flagged", accounts=ALL).total == 1
    # A hint that does not parse is ignored, never trusted.
    live = index_writer._live_dir(archive.root)
    (live / index_writer.HINT_FILE).write_text("{not json")
    assert index.update_index(archive).indexed == 0


def test_refresh_skips_documents_whose_fields_did_not_change(archive: Archive) -> None:
    """A UIDVALIDITY reset re-maps every message onto new placements with the same folder and flags:
    no document is rewritten; a real change among them still is, and a rebuild starts the digests over."""
    from archiver.backup.remap import Adoption, adopt

    index.update_index(archive)
    catalog = archive.catalog
    work_id = catalog.account_id("work")
    folder = catalog.folders(work_id)["INBOX"]
    rows = catalog.db.execute(
        "SELECT uid, blob_id, flags, internaldate, size FROM placements WHERE folder_id = ?", (folder.id,)
    ).fetchall()
    assert {row["blob_id"] for row in rows} == {BLOB_IDS[m] for m in ("m1", "m3", "m5")}
    assert "m3" not in markers(archive, "is:flagged")
    run = catalog.start_run(work_id)
    catalog.mark_placements_gone(run, folder.id, 1, None)  # as a reset does: the old placements gone ...
    adoptions = [
        Adoption(row["uid"] + 100, row["blob_id"], tuple(row["flags"].split()), row["internaldate"], row["size"])
        for row in rows
    ]
    adoptions = [  # ... and every message re-mapped under the new UIDVALIDITY; m3 was flagged meanwhile
        Adoption(a.uid, a.blob_id, ("\\Flagged", "\\Seen"), a.internaldate, a.size)
        if a.blob_id == BLOB_IDS["m3"]
        else a
        for a in adoptions
    ]
    assert adopt(catalog, run, folder.id, 2, adoptions) == 3
    report = index.update_index(archive)
    assert report.refreshed == 1 and report.unchanged == 2
    assert markers(archive, "is:flagged") == {"m1", "m3"}
    assert {"m1", "m3", "m5"} <= markers(archive, "folder:work/inbox")
    assert index.update_index(archive).refreshed == 0

    index.reindex(archive)  # a new generation: only its own digests are kept
    generations = {g for (g,) in catalog.db.execute("SELECT DISTINCT generation FROM index_fields")}
    assert generations == {index_writer._live_dir(archive.root).name}
    run = catalog.start_run(work_id)
    m5 = next(a for a in adoptions if a.blob_id == BLOB_IDS["m5"])
    assert catalog.update_flags(run, folder.id, 2, {m5.uid: ("\\Answered", "\\Seen")}) == 1
    report = index.update_index(archive)
    assert report.refreshed == 1 and report.unchanged == 0
    assert "m5" in markers(archive, "is:answered")
