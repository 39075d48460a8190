"""Matching messages without Message-ID by header bytes, size and INTERNALDATE: strict, or a download.

A real catalog and blob store; the server's header answer is the header section of the server's bytes
(what ``BODY.PEEK[HEADER]`` returns), the integration twin is tests/integration/test_sync_no_message_id.py.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.backup.header_print import match_by_header
from archiver.catalog import Catalog, NewPlacement
from archiver.mail.headers import header_block, summarize_headers
from archiver.sources.imap import MessageStub
from archiver.store.local import BlobStore

WHEN = datetime(2020, 2, 3, 4, 5, 6, tzinfo=UTC)
PLAIN = b"Received: by mx; Mon, 3 Feb 2020 04:05:06 +0000\r\nSubject: digest\r\n\r\nbody one\r\n"
TWIN_A = b"Subject: same\r\n\r\nbody A\r\n"
TWIN_B = b"Subject: same\r\n\r\nbody B\r\n"
WITH_ID = b"Message-ID: <x@y>\r\nSubject: digest\r\n\r\nbody one\r\n"


@pytest.fixture
def archived(tmp_path):
    """A catalog and store holding PLAIN, TWIN_A, TWIN_B and WITH_ID, archived at WHEN (gone, as after a reset)."""
    with Catalog.open(tmp_path) as catalog, BlobStore(tmp_path) as store:
        account = catalog.ensure_account("acct", "imap")
        run = catalog.start_run(account)
        folder = catalog.ensure_folder(account, "INBOX", "/", None, run)
        raws = [PLAIN, TWIN_A, TWIN_B, WITH_ID]
        stored = store.put_batch(raws)
        catalog.add_placements(
            run,
            folder.id,
            1,
            [
                NewPlacement(uid, s.blob_id, (), WHEN.isoformat(), len(raw), s.stored_size, summarize_headers(raw))
                for uid, (raw, s) in enumerate(zip(raws, stored, strict=True), start=1)
            ],
        )
        catalog.mark_placements_gone(catalog.start_run(account), folder.id, 1, None)
        yield catalog, store, account, {raw: s.blob_id for raw, s in zip(raws, stored, strict=True)}


def look(archived, server: dict[int, tuple[bytes, datetime]]):
    catalog, store, account, _ids = archived
    stubs = {uid: MessageStub(uid, summarize_id_line(raw), len(raw), when, ()) for uid, (raw, when) in server.items()}
    asked: list[list[int]] = []

    def headers(uids: list[int]) -> dict[int, bytes]:
        asked.append(uids)
        return {uid: header_block(server[uid][0]) for uid in uids}

    return match_by_header(stubs, catalog, account, store, headers), asked


def summarize_id_line(raw: bytes) -> bytes:
    """What ``HEADER.FIELDS (MESSAGE-ID)`` returns: the Message-ID line(s), then an empty line."""
    lines = [line for line in header_block(raw).split(b"\r\n") if line.lower().startswith(b"message-id:")]
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n"


def test_the_same_bytes_are_adopted(archived):
    result, asked = look(archived, {10: (PLAIN, WHEN)})
    assert result.matches == {10: archived[3][PLAIN]}
    assert asked == [[10]] and result.header_bytes == len(header_block(PLAIN))


def test_twins_are_doubt_and_downloaded(archived):
    result, _asked = look(archived, {11: (TWIN_A, WHEN), 12: (TWIN_B, WHEN)})
    assert result.matches == {}


@pytest.mark.parametrize(
    "raw, when",
    [
        (PLAIN.replace(b"digest", b"digesT"), WHEN),  # same size and date, another header
        (PLAIN.replace(b"body one", b"body one!"), WHEN),  # same header, another size
        (PLAIN, datetime(2020, 2, 3, 4, 5, 7, tzinfo=UTC)),  # another second
    ],
    ids=["header", "size", "internaldate"],
)
def test_anything_different_is_downloaded(archived, raw, when):
    result, _asked = look(archived, {13: (raw, when)})
    assert result.matches == {}


def test_no_candidate_costs_no_round_trip(archived):
    result, asked = look(archived, {14: (b"Subject: brand new\r\n\r\nnever seen\r\n", WHEN)})
    assert result.matches == {} and asked == [] and result.header_bytes == 0


def test_messages_with_a_message_id_are_left_to_the_message_id_match(archived):
    result, asked = look(archived, {15: (WITH_ID, WHEN)})
    assert result.matches == {} and asked == []


def test_an_unreadable_blob_means_a_download_not_a_crash(archived):
    _catalog, store, _account, ids = archived
    store.path_of(ids[PLAIN]).unlink()
    result, _asked = look(archived, {16: (PLAIN, WHEN)})
    assert result.matches == {}


def test_another_accounts_message_is_never_adopted(archived):
    """Isolation: a server of account B that serves A's header, size and date gets B a download, not A's bytes."""
    catalog, store, _account, _ids = archived
    other = catalog.ensure_account("other", "imap")
    stubs = {17: MessageStub(17, b"\r\n", len(PLAIN), WHEN, ())}
    result = match_by_header(stubs, catalog, other, store, lambda uids: {uid: header_block(PLAIN) for uid in uids})
    assert result.matches == {}


header_lines = st.lists(
    st.sampled_from([b"Subject: a", b"Subject: b", b"From: x@y", b"Received: by mx; 1 Jan 2020", b"X-A:  b"]),
    max_size=3,
)


@settings(max_examples=40, deadline=None)
@given(
    archived_messages=st.lists(st.tuples(header_lines, st.binary(max_size=6)), min_size=1, max_size=4),
    server=st.tuples(header_lines, st.binary(max_size=6)),
)
def test_an_adopted_blob_always_starts_with_the_servers_header_and_has_its_size(archived_messages, server):
    """Fuzzed: whatever the archive holds, a match is only ever a unique blob with the same header bytes and size."""

    def raw(parts: tuple[list[bytes], bytes]) -> bytes:
        return b"".join(line + b"\r\n" for line in parts[0]) + b"\r\n" + parts[1]

    server_raw = raw(server)
    with tempfile.TemporaryDirectory() as tmp, Catalog.open(Path(tmp)) as catalog, BlobStore(Path(tmp)) as store:
        account = catalog.ensure_account("acct", "imap")
        run = catalog.start_run(account)
        folder = catalog.ensure_folder(account, "INBOX", "/", None, run)
        raws = list(dict.fromkeys(raw(m) for m in archived_messages))
        stored = store.put_batch(raws)
        catalog.add_placements(
            run,
            folder.id,
            1,
            [
                NewPlacement(uid, s.blob_id, (), WHEN.isoformat(), len(r), s.stored_size, summarize_headers(r))
                for uid, (r, s) in enumerate(zip(raws, stored, strict=True), start=1)
            ],
        )
        stubs = {99: MessageStub(99, b"\r\n", len(server_raw), WHEN, ())}
        result = match_by_header(
            stubs, catalog, account, store, lambda uids: {u: header_block(server_raw) for u in uids}
        )
        header = header_block(server_raw)
        same = [
            s.blob_id for r, s in zip(raws, stored, strict=True) if len(r) == len(server_raw) and r.startswith(header)
        ]
        assert result.matches == ({99: same[0]} if len(same) == 1 else {})
