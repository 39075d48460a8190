"""POP3 wire parsing without a server: multi-line responses, the byte rule, listings, keys, dates, config."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from archiver.backup.pop3 import maildrop_changes
from archiver.config import config_from_toml_text
from archiver.errors import ConfigError, ProtocolError
from archiver.sources.pop3_parse import (
    FINGERPRINT_PREFIX,
    MaildropEntry,
    delivery_date,
    fingerprint,
    finish_message,
    parse_scan_listing,
    parse_uidl_listing,
    read_multiline,
    unique_keys,
)

SOURCE = Path("/etc/archiver/config.toml")


def stuffed(message: bytes) -> bytes:
    """What a server sends for ``message`` (RFC 1939 §3): dot-stuffed, CRLF added if missing, then ``.CRLF``."""
    lines = message.split(b"\r\n")
    wire = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)
    if not wire.endswith(b"\r\n"):
        wire += b"\r\n"
    return wire + b".\r\n"


def read(wire: bytes, chunk: int = 1 << 16) -> bytearray:
    return read_multiline(io.BufferedReader(io.BytesIO(wire)).readline, chunk)


MESSAGES = [
    b"Subject: plain\r\n\r\nbody\r\n",
    b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n. \r\nend\r\n",
    b"Subject: no final newline\r\n\r\nlast line",
    b"Subject: bare\r\n\r\nbare\rcr in a line\r\n\r\r\n",
    b"Subject: long\r\n\r\n" + b"x" * 200_000 + b"\r\n." + b"y" * 70_000 + b"\r\n",
    b"Subject: empty body\r\n\r\n",
    b"Subject: 8bit\r\n\r\n\xe9t\xe9 \xff\xfe\r\n",
]


@pytest.mark.parametrize("message", MESSAGES, ids=range(len(MESSAGES)))
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 16])
def test_wire_round_trip_is_byte_exact(message: bytes, chunk: int) -> None:
    """Unstuffing + the final-CRLF rule give back exactly the message, whatever the read size."""
    wire = stuffed(message)
    data = read(wire + b"+OK next response\r\n", chunk)
    assert finish_message(data, len(message)) == message


def test_reader_stops_at_the_terminator_and_leaves_the_rest() -> None:
    stream = io.BufferedReader(io.BytesIO(b"a\r\n..b\r\n.\r\n+OK after\r\n"))
    assert read_multiline(stream.readline) == b"a\r\n.b\r\n"
    assert stream.readline() == b"+OK after\r\n"


def test_line_endings_are_kept_as_received() -> None:
    """Nothing is rewritten: a bare LF line from a sloppy server stays a bare LF."""
    assert read(b"a\nb\r\n.\r\n") == b"a\nb\r\n"
    assert read(b"a\r\n.\n") == b"a\r\n"  # a bare-LF terminator is accepted too


def test_eof_inside_a_message_is_an_error() -> None:
    with pytest.raises(EOFError):
        read(b"Subject: x\r\n\r\ncut here")
    with pytest.raises(EOFError):
        read(b"Subject: x\r\n.", chunk=1)


def test_final_crlf_is_dropped_only_when_the_size_says_it_was_added() -> None:
    assert finish_message(bytearray(b"abc\r\n"), 3) == b"abc"
    assert finish_message(bytearray(b"abc\r\n"), 5) == b"abc\r\n"
    assert finish_message(bytearray(b"abc\r\n\r\n"), 5) == b"abc\r\n"
    assert finish_message(bytearray(b"abc\r\n"), 2) == b"abc\r\n"  # an inexact size changes nothing


def test_nul_becomes_0x80_as_in_imap() -> None:
    assert finish_message(bytearray(b"a\x00b\r\n"), 5) == b"a\x80b\r\n"


def test_scan_listing() -> None:
    assert parse_scan_listing([b"1 120", b"2 5 extra"]) == {1: 120, 2: 5}
    with pytest.raises(ProtocolError):
        parse_scan_listing([b"1"])
    with pytest.raises(ProtocolError):
        parse_scan_listing([b"x 12"])


def test_uidl_listing_keeps_ids_verbatim() -> None:
    assert parse_uidl_listing([b"1 000000016b041cac", b"2 0042"]) == {1: "000000016b041cac", 2: "0042"}
    for bad in (b"1", b"1 a b", b"1 " + b"x" * 71, b"one abc", b"1 caf\xe9"):
        with pytest.raises(ProtocolError):
            parse_uidl_listing([bad])


def test_unique_keys_number_repeats_in_order() -> None:
    assert unique_keys(["a", "b", "a", "a"]) == ["a", "b", "a#2", "a#3"]
    assert unique_keys([]) == []


def test_fingerprint_depends_on_headers_and_size() -> None:
    one = fingerprint(b"Subject: a\r\n\r\n", 100)
    assert one.startswith(FINGERPRINT_PREFIX) and one == fingerprint(b"Subject: a\r\n\r\n", 100)
    assert one != fingerprint(b"Subject: a\r\n\r\n", 101)
    assert one != fingerprint(b"Subject: b\r\n\r\n", 100)


def test_delivery_date_prefers_the_topmost_received() -> None:
    raw = (
        b"Received: from a by b;\r\n Tue, 1 Jul 2003 10:52:37 +0200\r\n"
        b"Received: from c by d; Mon, 30 Jun 2003 09:00:00 +0000\r\n"
        b"Date: Sun, 29 Jun 2003 08:00:00 -0500\r\n\r\nReceived: in the body; Fri, 1 Jan 2010 00:00:00 +0000\r\n"
    )
    assert delivery_date(raw) == datetime(2003, 7, 1, 10, 52, 37, tzinfo=timezone(timedelta(hours=2)))


def test_delivery_date_falls_back_to_date_then_none() -> None:
    assert delivery_date(b"Date: Sun, 29 Jun 2003 08:00:00 -0500\r\n\r\nx") == datetime(2003, 6, 29, 13, 0, tzinfo=UTC)
    assert delivery_date(b"Date: Sun, 29 Jun 2003 08:00:00 -0000\r\n\r\n").tzinfo is not None
    assert delivery_date(b"Received: no date here\r\nDate: garbage\r\n\r\n") is None
    assert delivery_date(b"") is None


def account_text(extra: str) -> str:
    return (
        '[archive]\npath = "/tmp/a"\n\n[[accounts]]\nname = "p"\nprotocol = "pop3"\nhost = "h"\n'
        f'username = "u"\npassword = "secret-pw"\n{extra}\n'
    )


@pytest.mark.parametrize("mode", ["auto", "user", "apop"])
def test_config_pop3_auth(mode: str) -> None:
    config = config_from_toml_text(account_text(f'pop3_auth = "{mode}"'), SOURCE)
    assert config.account("p").pop3_auth == mode


def test_config_pop3_auth_default_and_bad_value() -> None:
    assert config_from_toml_text(account_text(""), SOURCE).account("p").pop3_auth == "auto"
    with pytest.raises(ConfigError) as info:
        config_from_toml_text(account_text('pop3_auth = "sasl"'), SOURCE)
    assert "accounts[0].pop3_auth" in str(info.value) and '"auto", "user", "apop"' in str(info.value)


def test_maildrop_changes_fetch_only_unknown_keys_and_report_vanished_ones() -> None:
    entries = [MaildropEntry(1, "a", 10), MaildropEntry(2, "c", 20), MaildropEntry(3, "d", 30)]
    missing, gone = maildrop_changes(entries, {"a", "b"})
    assert [e.key for e in missing] == ["c", "d"]  # maildrop order
    assert gone == {"b"}
    assert maildrop_changes(entries, {"a", "c", "d"}) == ([], set())
    assert maildrop_changes([], {"a"}) == ([], {"a"})
