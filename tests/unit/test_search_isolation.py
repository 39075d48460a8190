"""Search isolation in the index layer: a viewer finds, counts and sees only their own accounts' mail.

The index holds one document per unique message, shared by every account
that archived it.  The reference for "what a viewer of account A may get" is
an archive that holds only A's placements of the same messages: every
query must give a viewer of A in the shared archive exactly what the whole
of that A-only archive gives (same messages, same total, same folders).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver import index
from archiver.archive import Archive
from archiver.index import ALL_ACCOUNTS
from archiver.index import writer as index_writer
from tests.fixtures.archives import add_messages, archive_at


def mail(subject: str, body: str, n: int, dated: bool = True) -> bytes:
    date = f"Date: Mon, 0{1 + n % 9} Jan 2024 10:00:00 +0000\r\n" if dated else ""
    return (
        f"From: Anna <anna@example.org>\r\nTo: bob@example.org\r\nSubject: {subject}\r\n{date}"
        f"Message-ID: <iso{n}@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


SHARED = mail("Quarterly figures", "the merger numbers, shared by both accounts", 1)
ALPHA_ONLY = mail("Alpha private", "alpha secret merger plans", 2)
BRAVO_ONLY = mail("Bravo private", "bravo secret merger plans", 3)
CASE_TWIN = mail("Twin private", "upper case twin secret merger", 4)
UNDATED = mail("Undated memo", "undated merger memo, dated by where it was archived", 5, dated=False)
WHEN = datetime(2024, 1, 1, tzinfo=UTC)

#: account -> (folder, message, flags, INTERNALDATE); "Work" and "work" are two accounts (names are case-sensitive).
PLACEMENTS: dict[str, list[tuple[str, bytes, tuple[str, ...], datetime]]] = {
    "acct-a": [
        ("Private-Merger", SHARED, ("\\Flagged",), WHEN),
        ("INBOX", ALPHA_ONLY, ("\\Seen",), WHEN),
        ("INBOX", UNDATED, ("\\Seen",), datetime(2024, 6, 1, tzinfo=UTC)),
    ],
    "acct-b": [
        ("INBOX", SHARED, ("\\Seen",), WHEN),
        ("Bravo-Hidden", BRAVO_ONLY, ("\\Seen", "\\Answered"), WHEN),
        ("Bravo-Hidden", UNDATED, ("\\Seen",), datetime(2019, 3, 5, tzinfo=UTC)),
    ],
    "Work": [
        ("Secret-Twin", CASE_TWIN, ("\\Flagged",), WHEN),
        ("INBOX", SHARED, (), WHEN),
        ("INBOX", UNDATED, (), datetime(2021, 7, 1, tzinfo=UTC)),
    ],
    "work": [("INBOX", ALPHA_ONLY, ("\\Seen",), WHEN)],
}


def _fill(archive: Archive, accounts: list[str]) -> None:
    for name in accounts:
        add_messages(archive, name, PLACEMENTS[name])
    index.update_index(archive)


@dataclass
class Archives:
    shared: Archive
    alone: dict[str, Archive]  # account -> an archive of that account's placements only


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archives]:
    root = tmp_path_factory.mktemp("isolation")
    opened = [archive_at(root / "shared")]
    _fill(opened[0], list(PLACEMENTS))
    alone = {}
    for name in PLACEMENTS:
        alone[name] = archive_at(root / f"only-{name}")
        _fill(alone[name], [name])
        opened.append(alone[name])
    yield Archives(opened[0], alone)
    for archive in opened:
        archive.close()


def _result(archive: Archive, query: str, accounts: object) -> tuple[int, set[tuple[str, tuple]]]:
    page = index.search(archive, query, accounts=accounts, page_size=1000, snippets=False)  # type: ignore[arg-type]
    return page.total, {(hit.blob_id, hit.folders) for hit in page.hits}


def test_no_accounts_means_no_hits(archives: Archives) -> None:
    for query in ("*", "merger", "folder:INBOX", "NOT nosuchword", "is:unread OR is:seen"):
        page = index.search(archives.shared, query, accounts=[])
        assert (page.total, page.hits, page.pages) == (0, (), 1), query
        assert index.search(archives.shared, query, accounts=()).total == 0
    assert index.search(archives.shared, "merger", accounts=ALL_ACCOUNTS).total == 5  # the administrator's view


def test_a_missing_visibility_is_refused_not_guessed(archives: Archives) -> None:
    with pytest.raises(TypeError):
        index.search(archives.shared, "merger")  # type: ignore[call-arg]
    for wrong in (None, "acct-a"):  # None is what a missing key becomes; a bare string is not a list of accounts
        with pytest.raises(TypeError, match="ALL_ACCOUNTS"):
            index.search(archives.shared, "merger", accounts=wrong)  # type: ignore[arg-type]


def test_a_shared_message_shows_only_the_viewers_folders(archives: Archives) -> None:
    (hit,) = index.search(archives.shared, "quarterly", accounts=["acct-a"]).hits
    assert hit.folders == (("acct-a", "Private-Merger"),)
    (hit,) = index.search(archives.shared, "quarterly", accounts=["acct-b"]).hits
    assert hit.folders == (("acct-b", "INBOX"),)
    (hit,) = index.search(archives.shared, "quarterly", accounts=ALL_ACCOUNTS).hits
    assert hit.folders == (("Work", "INBOX"), ("acct-a", "Private-Merger"), ("acct-b", "INBOX"))


@pytest.mark.parametrize(
    ("viewer", "query"),
    [
        ("acct-b", "folder:Private-Merger"),  # the other account's folder name
        ("acct-b", "in:private*"),
        ("acct-b", "folder:acct-a/private-merger"),
        ("acct-b", "account:acct-a"),
        ("acct-b", "account:ACCT-A quarterly"),
        ("acct-b", "is:flagged"),  # acct-a flagged its copy; acct-b's is only seen
        ("acct-a", "folder:Bravo-Hidden OR folder:acct-b/inbox"),
        ("acct-a", "is:seen quarterly"),  # acct-b read its copy; acct-a's is unread
        ("acct-a", "account:acct-b OR account:Work"),
        ("work", "account:Work twin"),  # account: is case-insensitive, but "Work" is another account than "work"
        ("work", "folder:secret-twin OR is:flagged"),
        ("acct-a", "undated date:2019"),  # no Date header: dated by acct-b's earlier INTERNALDATE before
        ("acct-a", "undated before:2024-05"),
        ("acct-b", "undated after:2020"),
        ("work", "undated"),
    ],
)
def test_field_terms_cannot_probe_other_accounts(archives: Archives, viewer: str, query: str) -> None:
    page = index.search(archives.shared, query, accounts=[viewer], snippets=False)
    assert (page.total, page.hits) == (0, ())


def test_field_terms_match_the_viewers_own_placements(archives: Archives) -> None:
    assert _result(archives.shared, "is:unread folder:private-merger", ["acct-a"])[0] == 1
    assert _result(archives.shared, "is:seen account:acct-*", ["acct-b"])[0] == 3
    assert _result(archives.shared, "NOT folder:inbox", ["acct-b"])[0] == 2  # Bravo-Hidden only
    assert _result(archives.shared, "folder:secret-twin", ["Work"])[0] == 1
    assert _result(archives.shared, "merger", ["acct-a", "acct-b"])[0] == 4
    for viewer, day in (("acct-a", "2024-06-01"), ("acct-b", "2019-03-05"), ("Work", "2021-07-01")):
        assert _result(archives.shared, f"undated date:{day}", [viewer])[0] == 1  # its own INTERNALDATE
    assert _result(archives.shared, "undated date:2019", ["acct-a", "acct-b"])[0] == 1


_FOLDERS = ["inbox", "private-merger", "bravo-hidden", "secret-twin", "acct-a/inbox", "acct-b/inbox", "work/inbox"]
_FOLDERS += ["private*", "*", "acct-?/*", "*hidden", "work/*"]
_ACCOUNTS = ["acct-a", "acct-b", "Work", "work", "acct-*", "*", "ACCT-B", "w*"]
_ATOMS = st.one_of(
    st.sampled_from(["merger", "quarterly", "secret", "plans", "private", "twin", "nosuchword", "*"]),
    st.builds(lambda f, v: f"{f}:{v}", st.sampled_from(["folder", "in"]), st.sampled_from(_FOLDERS)),
    st.builds(lambda v: f"account:{v}", st.sampled_from(_ACCOUNTS)),
    st.builds(lambda v: f"is:{v}", st.sampled_from(["unread", "seen", "flagged", "answered", "read", "starred"])),
    st.sampled_from(["date:2019", "date:2024-06", "date:2024-01-01", "before:2020", "after:2021", "date:2021..2024"]),
    st.sampled_from(["before:2024-06-01", "after:2024-01-02", "date:..2021-07", "undated"]),
)
QUERIES = st.recursive(
    _ATOMS,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"{a} {b}", inner, inner),
        st.builds(lambda a, b: f"({a} OR {b})", inner, inner),
        st.builds(lambda a: f"NOT ({a})", inner),
    ),
    max_leaves=5,
)


@settings(max_examples=150, deadline=None)
@given(query=QUERIES, viewer=st.sampled_from(sorted(PLACEMENTS)))
def test_a_viewer_gets_what_an_archive_of_their_account_alone_gives(
    archives: Archives, query: str, viewer: str
) -> None:
    """Same messages, same total, same folders: nothing another account holds changes a viewer's results."""
    assert _result(archives.shared, query, [viewer]) == _result(archives.alone[viewer], query, ALL_ACCOUNTS)


def test_accounts_are_matched_exactly_not_by_case(archive: Archive) -> None:
    _fill(archive, ["Work", "work"])
    assert _result(archive, "twin", ["work"]) == (0, set())
    assert _result(archive, "twin", ["Work"])[0] == 1


def test_a_copy_archived_later_by_another_account_stays_out_of_sight(archive: Archive) -> None:
    """The incremental refresh (a known message gains a placement) rewrites the per-account fields too."""
    _fill(archive, ["acct-a"])
    add_messages(archive, "acct-b", [("INBOX", SHARED, ("\\Seen",), WHEN)])
    assert index.update_index(archive).refreshed == 1
    shared = archive.store.put_batch([SHARED])[0].blob_id
    assert _result(archive, "quarterly is:seen folder:inbox", ["acct-b"]) == (1, {(shared, (("acct-b", "INBOX"),))})
    assert _result(archive, "quarterly", ["acct-a"]) == (1, {(shared, (("acct-a", "Private-Merger"),))})
    assert _result(archive, "quarterly (is:seen OR folder:inbox OR account:acct-b)", ["acct-a"]) == (0, set())


def test_an_index_without_per_account_fields_refuses_viewers_with_one_clear_line(archive: Archive) -> None:
    """An index written by an older version cannot limit placement fields: say so rather than show nothing."""
    _fill(archive, ["acct-a", "acct-b"])
    live = index_writer.open_live(archive.root)
    writer = live.writer()
    for field in ("owner", "owner_folder", "owner_flag"):
        writer.remove_field(field)
    writer.commit()
    with pytest.raises(index.SearchIndexError, match="archiver reindex"):
        index.search(archive, "merger", accounts=["acct-a"])
    assert index.search(archive, "merger", accounts=ALL_ACCOUNTS).total == 4
