"""Fuzzing the catalog's header scan: any bytes give a summary (never an exception), and a field
after lines that are neither fields nor folds is found, as an IMAP server finds it."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from archiver.files.formats import status_flags
from archiver.mail.headers import header_block, header_fields, summarize_headers

LINE_END = st.sampled_from([b"\r\n", b"\n"])
# a line that is no header field and no fold: no colon, not blank, not starting with a blank
BROKEN_LINE = st.binary(min_size=1, max_size=60).filter(
    lambda b: b":" not in b and b"\n" not in b and b"\r" not in b and b[:1] not in (b" ", b"\t") and b.strip()
)
FIELD_LINE = st.sampled_from([b"Received: from x", b"X-Junk: 1", b"From me", b"To   : obs@example.org"])


@settings(max_examples=500)
@given(st.binary(max_size=3000))
@example(b"\x00" * 50)
@example(b"Subject: \xff\xfe\r\n\r\n")
@example(b"Message-ID:\r\n\r\n")
@example(b"Date: Mon, 1 Jan 0001 00:00:00 +1400\r\n\r\n")
@example(b"Date: Fri, 31 Dec 9999 23:59:59 -1200\r\n\r\n")
@example(b"\r" * 100 + b"From: x\r\n")
def test_any_bytes_give_a_summary(raw):
    summary = summarize_headers(raw)
    for value in (summary.message_id, summary.sender, summary.recipients, summary.subject, summary.date):
        assert value is None or isinstance(value, str)
    assert all(isinstance(v, str) for v in header_fields(raw).values())
    status_flags(raw)  # the importer's Status/X-Status read shares the scan
    assert len(header_block(raw)) <= len(raw)


@settings(max_examples=300)
@given(st.lists(st.one_of(BROKEN_LINE, FIELD_LINE), max_size=8), LINE_END, st.booleans())
@example([b"MIME-Versio\x87: 1.0"], b"\n", False)
@example([b"From", b" : <attack@example.org>"], b"\n", True)
def test_message_id_after_broken_lines_is_found(lines, end, with_fold):
    """Dovecot answers HEADER.FIELDS (MESSAGE-ID) for such messages; the catalog must agree."""
    head = b"".join(line + end for line in lines)
    if with_fold and lines:
        head += b" a fold of the line before" + end
    raw = head + b"Message-ID: <found@example.org>" + end + b"Subject: s" + end + end + b"Message-ID: <body@x>" + end
    assert summarize_headers(raw).message_id == "<found@example.org>"
    assert summarize_headers(raw).subject == "s"
