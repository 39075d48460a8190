"""The catalog's header summary: a line scan that must read what the stdlib's parser reads, leniently."""

from __future__ import annotations

from email.errors import MissingHeaderBodySeparatorDefect
from email.parser import BytesHeaderParser
from email.policy import compat32

import pytest

from archiver.devtools.sample_mail import corpus_messages
from archiver.mail.headers import header_fields, summarize_headers

WANTED = (b"message-id", b"date", b"from", b"to", b"subject")


def test_folded_headers_first_occurrence_and_any_case():
    raw = (
        b"Received: x\r\nSUBJECT: first\r\n  folded line\r\nSubject: second\r\n"
        b"message-id:   <a@b>\r\nTo: =?utf-8?q?J=C3=B8ran?= <j@example.org>\r\n\r\nSubject: body, not a header\r\n"
    )
    fields = header_fields(raw)
    assert fields[b"subject"] == "first\r\n  folded line"
    assert fields[b"message-id"] == "<a@b>"
    summary = summarize_headers(raw)
    assert summary.subject == "first folded line"
    assert summary.recipients == "Jøran <j@example.org>"
    assert summary.message_id == "<a@b>" and summary.date is None


def test_section_ends_at_the_empty_line_as_servers_read_it():
    # a misplaced mbox "From " line and a line that is no header (with its folds) are skipped, as
    # Dovecot does: the section ends at the empty line only (the stdlib's parser stops at the bad line)
    raw = b"From someone Sun Apr  5 09:24:45 2015\nX: 1\nFrom x@y  Sun Apr  5\nSubject: kept\nnot a header\n"
    raw += b" : its fold\nTo   : obs blanks\n\nFrom: body\n"
    assert header_fields(raw) == {b"subject": "kept", b"to": "obs blanks"}
    assert header_fields(b"Subject: lone CR\rTo: t\r\rFrom: body") == {b"subject": "lone CR", b"to": "t"}
    assert header_fields(b"") == {} and header_fields(b"\r\n\r\nSubject: x") == {}
    assert header_fields(b"Subject: no blank line at all") == {b"subject": "no blank line at all"}


def test_raw_utf8_and_broken_bytes_are_readable_never_raising():
    raw = "Subject: Übersicht 報告\r\nFrom: Marilù <m@x.it>\r\n".encode() + b"To: \xff\xfe broken\x00\r\n\r\n"
    summary = summarize_headers(raw)
    assert summary.subject == "Übersicht 報告" and summary.sender == "Marilù <m@x.it>"
    assert summary.recipients == "\ufffd\ufffd broken"


def test_reads_what_the_stdlib_parser_reads_across_the_corpus(corpus_dir):
    """Every message of the shared corpus: same values, except where the stdlib gives U+FFFD for raw UTF-8,
    and fields after a line that is no header, where the stdlib stops and the scan (like servers) goes on."""
    compared = 0
    for name, raw in corpus_messages(corpus_dir):
        from archiver.mail.headers import header_block

        parsed = BytesHeaderParser(policy=compat32).parsebytes(header_block(raw))
        stopped_early = any(isinstance(d, MissingHeaderBodySeparatorDefect) for d in parsed.defects)
        ours = header_fields(raw)
        for field in WANTED:
            theirs = parsed.get(field.decode())
            mine = ours.get(field)
            if theirs is None and mine is not None and stopped_early:
                continue
            if theirs is None or mine is None:
                assert theirs is None and mine is None, (name, field)
                continue
            theirs = str(theirs)
            if "\ufffd" in theirs or not raw.isascii():
                assert len(mine) <= len(theirs) + 2 or "\ufffd" not in mine, (name, field)
            else:
                assert mine == theirs, (name, field)
            compared += 1
    assert compared > 5000


@pytest.mark.parametrize("junk", [b"\x00" * 100, b":" * 50, b" \t\r\n" * 20, b"=?x?q?" * 40, b"\xff" * 300])
def test_junk_never_raises(junk):
    summarize_headers(junk)
    summarize_headers(b"Subject: " + junk + b"\r\n\r\n")
