"""Fuzzing what a server's bytes go through: a parser returns a value or raises one of the project's errors.

The FETCH reader, INTERNALDATE, VANISHED, POP3's LIST/UIDL listings and multi-line reader, the
numbers checked out of STATUS/EXAMINE, and the bounded socket reader itself.  Anything else (a
ValueError, an OverflowError, a MemoryError) would be a traceback, or a crash inside the catalog.
"""

from __future__ import annotations

import io
import socket
import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.errors import ArchiverError, ProtocolError, SourceError
from archiver.sources.imap import MAX_UID, checked_number, parse_vanished
from archiver.sources.imap_parse import parse_body_fetch, parse_internaldate
from archiver.sources.pop3_parse import MessageTooLarge, parse_scan_listing, parse_uidl_listing, read_multiline
from archiver.sources.wire import WireReader

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Bytes that look like IMAP: the tokens a FETCH line is made of, mixed with noise.
_TOKENS = st.sampled_from(
    [b"UID", b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE", b"MODSEQ", b"BODY[]", b"(", b")", b" ", b'"', b"{",
     b"}", b"\\Seen", b"-1", b"0", b"18446744073709551616", b"17", b"01-Jan-2024 10:00:00 +0000", b"99-Xyz-0000"]
)  # fmt: skip
_IMAPISH = st.lists(st.one_of(_TOKENS, st.binary(max_size=8)), max_size=30).map(b"".join)


@st.composite
def fetch_data(draw: st.DrawFn) -> list:
    """imaplib's list for FETCH responses: (line, literal) then b")", or stray pieces."""
    items: list = []
    for _ in range(draw(st.integers(0, 4))):
        body = draw(st.binary(max_size=40))
        size = draw(st.one_of(st.just(len(body)), st.integers(0, 2**70)))
        head = b"%d (%sBODY[] {%d}" % (draw(st.integers(-5, 2**64)), draw(_IMAPISH), size)
        items.append(draw(st.sampled_from([(head, body), head, (head, body, b"x"), (body, head)])))
        items.append(draw(st.sampled_from([b")", b"", b" FLAGS (x))", None])))
    return items


@FUZZ
@given(fetch_data())
def test_the_fetch_reader_returns_a_reading_or_none(data: list) -> None:
    result = parse_body_fetch(data)
    if result is not None:
        for uid, attributes in result.items():
            assert uid >= 0
            assert isinstance(attributes[b"BODY[]"], bytes)


@FUZZ
@given(st.one_of(_IMAPISH, st.binary(max_size=40)))
def test_internaldate_is_a_date_or_none(value: bytes) -> None:
    parse_internaldate(value)


@FUZZ
@given(st.lists(st.one_of(_IMAPISH, st.from_regex(rb"\A(\(EARLIER\) )?[0-9:,*-]{0,30}\Z")), max_size=5))
def test_vanished_is_uids_or_one_protocol_error(items: list[bytes]) -> None:
    try:
        uids = parse_vanished(items, among={1, 2, 3, 2**31})
    except ProtocolError:
        return
    assert all(1 <= uid <= MAX_UID for uid in uids)


def test_a_vanished_range_over_all_uids_costs_nothing() -> None:
    """``1:4294967295`` would be four billion ints: only the UIDs the caller knows are looked at."""
    assert parse_vanished([b"(EARLIER) 1:4294967295"], among={5, 9}) == {5, 9}


@FUZZ
@given(st.one_of(st.integers(-(2**80), 2**80), st.binary(max_size=30), st.text(max_size=30), st.none()))
def test_a_server_number_is_checked_or_one_protocol_error(value: object) -> None:
    try:
        number = checked_number(value, "UIDVALIDITY", 1, MAX_UID)
    except ProtocolError as exc:
        assert "\n" not in str(exc)
        return
    assert 1 <= number <= MAX_UID


_LISTING_LINE = st.one_of(
    st.binary(max_size=30),
    st.from_regex(rb"\A-?[0-9]{1,25} [\x00-\xff]{0,75}\Z"),
    st.from_regex(rb"\A[0-9\xb2\xb3 ]{1,10} [0-9]{1,22}\Z"),
)


@FUZZ
@given(st.lists(_LISTING_LINE, max_size=6))
def test_pop3_listings_are_parsed_or_one_protocol_error(lines: list[bytes]) -> None:
    for parse in (parse_scan_listing, parse_uidl_listing):
        try:
            result = parse(lines)
        except ProtocolError:
            continue
        assert all(1 <= number < 2**31 for number in result)
    try:
        sizes = parse_scan_listing(lines)
    except ProtocolError:
        return
    assert all(0 <= size < 2**63 for size in sizes.values())


@FUZZ
@given(st.binary(max_size=300), st.integers(1, 64), st.integers(1, 200))
def test_the_pop3_multiline_reader_returns_or_raises_a_known_error(stream: bytes, chunk: int, limit: int) -> None:
    try:
        out = read_multiline(io.BytesIO(stream).readline, chunk=chunk, limit=limit)
    except MessageTooLarge:
        return
    except EOFError:  # the stream ended without ".": Pop3Source maps it to one ConnectError line
        return
    assert len(out) <= limit


@FUZZ
@given(
    st.binary(max_size=2000),
    st.lists(st.tuples(st.sampled_from(["line", "read", "piece"]), st.integers(0, 3000)), max_size=8),
)
def test_the_bounded_reader_returns_bytes_or_one_source_error(stream: bytes, operations: list) -> None:
    """Whatever the peer sends, then closes: bytes back, or a SourceError (line too long, literal over the cap)."""
    ours, theirs = socket.socketpair()
    sender = threading.Thread(target=lambda: (theirs.sendall(stream), theirs.close()))
    sender.start()
    reader = WireReader(ours, "acct: host:1", 2.0, max_line=300, max_literal=1000)
    received = b""
    try:
        for kind, size in operations:
            try:
                if kind == "line":
                    piece = reader.readline()
                elif kind == "piece":
                    piece = reader.readline(size)
                else:
                    piece = reader.read(size)
            except SourceError as exc:
                assert isinstance(exc, ArchiverError) and "\n" not in str(exc)
                return
            received += piece
        assert stream.startswith(received)
    finally:
        sender.join()
        ours.close()
