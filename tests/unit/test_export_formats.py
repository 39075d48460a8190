"""Pure parts of export/import: mboxrd escaping at any chunking, safe names, Maildir flags, reading mbox."""

from __future__ import annotations

import io
import mailbox
import random
import re

import pytest

from archiver.files.formats import (
    MboxrdEscaper,
    from_line,
    from_line_date,
    maildir_folder,
    maildir_info,
    mboxrd_unescape_line,
    read_mbox,
    status_flags,
)
from archiver.names import safe_component, unique_name

TRICKY = [
    b"Subject: a\r\n\r\nFrom the start\r\n>From once\r\n>>From twice\r\nFro\r\nFromage\r\n>From\r\n",
    b"Subject: b\n\nFrom \nno newline at end: From here",
    b"From x\r\n" * 3,
    b"",
    b">" * 5000 + b"From deep\n",
]


def escape(raw: bytes, chunk: int) -> bytes:
    out = io.BytesIO()
    escaper = MboxrdEscaper(out.write)
    for start in range(0, len(raw), chunk):
        escaper.feed(raw[start : start + chunk])
    escaper.close()
    return out.getvalue()


@pytest.mark.parametrize("raw", TRICKY)
def test_escaping_does_not_depend_on_chunk_boundaries(raw):
    whole = escape(raw, max(len(raw), 1))
    for chunk in (1, 2, 3, 7, 64):
        assert escape(raw, chunk) == whole
    lines = whole.splitlines(keepends=True)
    assert not any(line.startswith(b"From ") for line in lines)  # no line can be taken for a separator


def reference_escape(raw: bytes) -> bytes:
    """mboxrd by the book, a line at a time: what the streaming escaper must equal."""
    lines = [b">" + line if re.match(rb">*From ", line) else line for line in raw.splitlines(keepends=True)]
    body = b"".join(lines)
    return body + (b"" if not body or body.endswith(b"\n") else b"\n") + b"\n"


def test_escaping_equals_the_line_by_line_definition_at_random_chunkings():
    rng = random.Random(11)
    pieces = [b"From ", b">From ", b">>", b"Fro", b"m ", b"\n", b"\r\n", b"text", b" From ", b">", b"F"]
    for _ in range(300):
        raw = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 60)))
        out = io.BytesIO()
        escaper = MboxrdEscaper(out.write)
        pos = 0
        while pos < len(raw):
            step = rng.randrange(1, 12)
            escaper.feed(raw[pos : pos + step])
            pos += step
        escaper.close()
        assert out.getvalue() == reference_escape(raw), raw


def test_escape_then_read_back_is_identity_for_messages_ending_in_newline(tmp_path):
    rng = random.Random(4)
    raws = [m if m.endswith(b"\n") else m + b"\r\n" for m in TRICKY[:3]]
    raws += [b"X: 1\n\n" + b"".join(rng.choice([b"From a\n", b">From b\n", b"text\n", b"\n"]) for _ in range(50))]
    path = tmp_path / "box.mbox"
    with path.open("wb") as out:
        for raw in raws:
            out.write(from_line("2020-01-02T03:04:05+05:30"))
            escaper = MboxrdEscaper(out.write)
            escaper.feed(raw)
            escaper.close()
    assert [raw for _k, raw, _d, _n in read_mbox(path, "box.mbox")] == raws
    # Python's mailbox splits it the same way (it does not undo mboxrd quoting itself)
    box = mailbox.mbox(path, create=False)
    assert len(box) == len(raws)
    got = [b"".join(mboxrd_unescape_line(line) for line in box.get_bytes(key).splitlines(True)) for key in box.keys()]  # noqa: SIM118
    assert got == raws


def test_from_line_date_round_trip():
    line = from_line("2020-01-02T03:04:05+05:30")
    assert line == b"From MAILER-DAEMON Wed Jan  1 21:34:05 2020\n"
    assert from_line_date(line) == "2020-01-01T21:34:05+00:00"
    assert from_line_date(b"From someone@example.org Mon Mar  3 10:00:00 2003 +0100\n") == "2003-03-03T10:00:00+00:00"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("COM1", "_COM1"),
        ('a:b/c\\d*e?f"g<h>i|j', "a_b_c_d_e_f_g_h_i_j"),
        ("trailing dot. ", "trailing dot"),
        (".hidden", "_hidden"),
        ("", "_"),
        ("..", "_"),
        ("tab\there\x00", "tab_here_"),
        ("Cafe\u0301", "Café"),
    ],
)
def test_safe_component(name, expected):
    assert safe_component(name) == expected


def test_safe_component_length_limited_in_utf8_bytes():
    name = safe_component("ü" * 300)
    assert len(name.encode()) <= 100 and name == "ü" * 50


def test_unique_name_is_case_insensitive():
    taken: set[str] = set()
    assert [unique_name(taken, n, ".eml") for n in ("Mail", "mail", "MAIL", "x")] == [
        "Mail.eml",
        "mail~2.eml",
        "MAIL~3.eml",
        "x.eml",
    ]


def test_maildir_info_letters_sorted_keywords_lowercase():
    letters = {"$Work": "a", "Later": "b"}
    info = maildir_info(("\\Seen", "\\Answered", "$Work", "\\Flagged", "$Forwarded", "Later", "\\Recent"), letters.get)
    assert info == ":2,FPRSab"


def test_status_headers_and_maildir_folder_names():
    assert status_flags(b"Status: RO\r\nX-Status: AF\r\n\r\nx") == ("\\Answered", "\\Flagged", "\\Seen")
    from pathlib import Path

    assert maildir_folder(Path(".")) == "INBOX"
    assert maildir_folder(Path(".Lists.&ANw-ber")) == "Lists/Über"
    assert maildir_folder(Path("a/b")) == "a/b"
