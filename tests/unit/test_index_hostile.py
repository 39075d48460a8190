"""Hostile content and the search index: one message can no longer stop it, nor blow its memory.

Each message that once failed a whole index batch (so every later run failed on it and nothing
archived after it became searchable) is put between ordinary messages; the ordinary ones must be
found, the hostile one too (by what could be read of it) and its trouble lands in ``index_problems``.
The memory side is measured in ``test_index_hostile_memory``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.archive import Archive
from archiver.backup import update_search_index
from archiver.index import ALL_ACCOUNTS, batches, search, update_index, writer
from archiver.index import documents as index_documents
from archiver.index.documents import CatalogMessage, build_document
from archiver.mail.textextract import ExtractLimits, extract, pdf_text
from tests.fixtures.archives import OpenArchive, add_messages
from tests.fixtures.cli import Cli
from tests.fixtures.hostile_mail import (
    BYTES_CODECS,
    LAST_INTERNALDATE,
    huge_attachment,
    huge_body,
    huge_header_line,
    pdf_bomb,
    plain,
    with_pdf,
)


def _ids(archive: Archive, query: str) -> set[str]:
    return {hit.blob_id for hit in search(archive, query, accounts=ALL_ACCOUNTS, page_size=100).hits}


def _problems(archive: Archive) -> dict[str, str]:
    return dict(archive.catalog.db.execute("SELECT blob_id, problems FROM index_problems"))


def _blob(archive: Archive, raw: bytes) -> str:
    return archive.store.put_batch([raw])[0].blob_id


def _around(hostile: list[tuple[bytes, datetime | None]]) -> list:
    """The hostile messages between ordinary ones: before them, and after them (the ones that were lost)."""
    items = [("INBOX", plain("ordinary first", "lemonade before"), (), None)]
    items += [("INBOX", raw, (), date) for raw, date in hostile]
    items += [("INBOX", plain("ordinary last", "gooseberry after"), (), None)]
    return items


# -- extraction: each hostile input is read as far as it safely can be, and says what it skipped --------------
@pytest.mark.parametrize("codec", BYTES_CODECS)
def test_a_bytes_codec_as_charset_is_read_as_text(codec: str) -> None:
    text = extract(plain(f"charset {codec}", "walrus carpenter", charset=codec))
    assert "walrus carpenter" in text.body
    assert any(repr(codec) in problem for problem in text.problems)


def test_a_pdf_bomb_is_inflated_only_up_to_the_cap_and_recorded() -> None:
    problems: list[str] = []
    limits = ExtractLimits(max_pdf_stream_bytes=4 << 20)
    assert pdf_text(pdf_bomb(inflated_mb=100), limits, problems) == ""
    assert problems == ["PDF stream inflating beyond 4 MB (a PDF bomb?): the rest of its text not indexed"]


def test_a_huge_header_is_cut_and_what_precedes_it_still_indexed() -> None:
    text = extract(huge_header_line(3, marker="narwhal"))
    assert text.subject == "narwhal" and "narwhal body" in text.body
    assert text.problems == ["header section over 512 KB: only its first 512 KB indexed"]


@pytest.mark.parametrize("in_part", [False, True])
def test_a_huge_text_body_is_read_up_to_the_text_cap(in_part: bool) -> None:
    text = extract(huge_body(6, "capybara", in_part=in_part))
    assert text.body.startswith("capybara \U0001f600") and len(text.body) == ExtractLimits().max_body_chars
    assert text.problems == ["text parts over 4 MB: the rest not indexed"]


def test_a_forwarded_message_is_split_too() -> None:
    """The message inside is split in turn (the email package held 10 times a 30 MB one): same text."""
    text = extract(huge_attachment(6, "wombat"))
    assert text.body == "wombat inside" and text.subject == "wombat" and text.problems == []


def test_an_unsplittable_big_message_is_parsed_only_at_its_start() -> None:
    text = extract(huge_attachment(6, "dingo", shape="unclosed"))
    assert "dingo inside" in text.body
    assert "message not splittable on its MIME boundaries: only its first 4 MB read" in text.problems


def test_a_huge_header_line_inside_a_part_is_cut_too() -> None:
    junk = b"X-Junk: " + b"z" * (2 << 20) + b"\r\n"
    raw = (
        b'From: a@example.org\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n" + junk + b"\r\nokapi inside\r\n--b--\r\n"
    )
    assert "okapi inside" in extract(raw).body


_CHARSETS = st.sampled_from([*BYTES_CODECS, "utf-8", "utf-16", "x-unknown", "idna", "punycode", "mbcs", "\x00", ""])
_HEADER = st.builds(
    lambda name, value: name + b": " + value + b"\r\n",
    st.sampled_from([b"Subject", b"From", b"To", b"Date", b"Content-Type", b"Content-Transfer-Encoding", b"X-A"]),
    st.binary(max_size=300) | st.sampled_from([b"=?base64?b?aGVsbG8=?=", b"Fri, 31 Dec 9999 23:59:59 -2359"]),
)


@st.composite
def _messages(draw: st.DrawFn) -> bytes:
    """Messages with hostile charsets, encodings, boundaries and dates, nested up to two levels."""
    charset = draw(_CHARSETS).encode("latin-1")
    leaf = b'Content-Type: text/plain; charset="' + charset + b'"\r\n' + draw(st.sampled_from(
        [b"", b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n"]
    )) + b"\r\n" + draw(st.binary(max_size=400))  # fmt: skip
    parts = draw(st.lists(st.sampled_from([leaf, b"Content-Type: application/pdf\r\n\r\n%PDF-1.4 junk"]), max_size=3))
    body = b"".join(b"--b\r\n" + part + b"\r\n" for part in parts) + draw(st.sampled_from([b"--b--\r\n", b""]))
    head = b"".join(draw(st.lists(_HEADER, max_size=6)))
    return head + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + body if parts else head + leaf


_ZONES = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))


@settings(max_examples=300, deadline=None)
@given(raw=_messages(), date=st.datetimes(timezones=_ZONES), pad=st.integers(0, 80_000))
def test_fuzz_no_message_makes_document_building_raise(raw: bytes, date: datetime, pad: int) -> None:
    """Whatever the bytes and the INTERNALDATE, a document comes out (the splitter too: padded past 64 KB)."""
    for data in (raw, raw + b"\r\n" + b"a" * pad):
        message = CatalogMessage(1, "b" * 64, len(data), (("acct", "INBOX", "", date.isoformat()),))
        document, problems = build_document(message, data)
        assert document["blob_id"] == "b" * 64 and isinstance(problems, list)
        assert 0 <= document.get("date", 0) <= index_documents.MAX_SIZE


# -- the index update: one message is isolated, the rest indexed, no retry forever --------------------------
def test_hostile_messages_do_not_stop_the_index(archive: Archive) -> None:
    charsets = [(plain(f"charset {codec}", f"body{codec} words", charset=codec), None) for codec in BYTES_CODECS]
    last_date = (plain("far future", "tortoise date"), LAST_INTERNALDATE)
    add_messages(archive, "work", _around([*charsets, last_date]))
    first = update_index(archive)
    assert _ids(archive, "gooseberry") and _ids(archive, "lemonade")  # the one after them is searchable
    assert _ids(archive, "tortoise") == {_blob(archive, last_date[0])}
    for codec in BYTES_CODECS:
        assert len(_ids(archive, f"body{codec}")) == 1, codec
    problems = _problems(archive)
    assert {_blob(archive, raw) for raw, _ in charsets} <= set(problems)
    assert first.indexed == len(charsets) + 3
    again = update_index(archive)  # nothing left behind to retry
    assert again.indexed == 0 and not again.errors


def test_a_message_that_raises_anything_is_indexed_by_its_folders(archive: Archive, monkeypatch) -> None:
    """Whatever extraction raises (here MemoryError, as a huge header once did) stays with that message."""
    real = index_documents.extract

    def extract_or_fail(raw: bytes, limits=None, truncated=False):  # type: ignore[no-untyped-def]
        if b"poisoned" in raw:
            raise MemoryError
        return real(raw, limits, truncated)

    monkeypatch.setattr(index_documents, "extract", extract_or_fail)
    hostile = plain("poisoned", "never read")
    add_messages(archive, "work", _around([(hostile, datetime(2021, 5, 4, tzinfo=UTC))]))
    update_index(archive)
    assert _ids(archive, "gooseberry")
    assert _blob(archive, hostile) in _ids(archive, "folder:INBOX date:2021-05-04")
    assert "MemoryError" in _problems(archive)[_blob(archive, hostile)]


def test_a_document_whoosh_refuses_leaves_no_words_to_the_next_message(archive: Archive, monkeypatch) -> None:
    """Whoosh fails in the last field, after the subject's words went to its pool: they stay with this message."""
    real = batches.document_for

    def refused(store, message):  # type: ignore[no-untyped-def]
        document, problems = real(store, message)
        if "pangolin" in document.get("subject", ""):
            document["to"] = object()  # the last field Whoosh indexes: not text
        return document, problems

    monkeypatch.setattr(batches, "document_for", refused)
    hostile = plain("pangolin refused", "scales")
    add_messages(archive, "work", _around([(hostile, None)]))
    update_index(archive)
    assert _ids(archive, "pangolin") <= {_blob(archive, hostile)}
    assert _ids(archive, "gooseberry") and len(_ids(archive, "folder:INBOX")) == 3
    assert "document refused by the index" in _problems(archive)[_blob(archive, hostile)]


def test_hostile_messages_do_not_stop_the_index_workers(archive: Archive, monkeypatch) -> None:
    """The same isolation inside the worker processes of a large backlog."""
    monkeypatch.setattr(writer, "PARALLEL_FROM", 10)
    hostile = [(plain(f"charset {codec}", f"body{codec} words", charset=codec), None) for codec in BYTES_CODECS]
    hostile.append((plain("far future", "tortoise date"), LAST_INTERNALDATE))
    fillers = [("INBOX", plain(f"filler {n}", f"filler{n} text"), (), None) for n in range(20)]
    add_messages(archive, "work", _around(hostile) + fillers)
    report = update_index(archive, procs=2, memory_mb=None)
    assert report.plan is not None and report.plan.procs == 2
    assert _ids(archive, "gooseberry") and _ids(archive, "filler19") and _ids(archive, "tortoise")
    assert len(_problems(archive)) >= len(BYTES_CODECS)


def test_a_message_over_the_read_limit_is_indexed_by_its_start(archive: Archive, monkeypatch) -> None:
    """A huge message is streamed from the store up to the limit (here 256 KB instead of 32 MB) and indexed so far."""
    monkeypatch.setattr(batches, "READ_LIMIT", 256 * 1024)
    attachment = "".join(f"{n:07d}\r\n" for n in range(60_000)).encode()  # 540 KB of base64-like lines
    raw = (
        b'From: a@example.org\r\nSubject: huge\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\npelican first\r\n--b\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + attachment
        + b"--b\r\nContent-Type: text/plain\r\n\r\nflamingo last\r\n--b--\r\n"
    )  # fmt: skip
    add_messages(archive, "work", _around([(raw, None)]))
    update_index(archive)
    blob = _blob(archive, raw)
    assert _ids(archive, "pelican") == {blob} and _ids(archive, "flamingo") == set()
    assert _problems(archive)[blob].startswith("message of 0.5")
    assert "only its first 0.25 MB indexed" in _problems(archive)[blob]
    assert _ids(archive, "gooseberry")


# -- what the commands report ----------------------------------------------------------------------------
def _break_index(root: Path) -> None:
    (root / "index" / "g-broken").mkdir(parents=True)
    (root / "index" / "CURRENT").write_text("g-broken\n")


def test_a_failed_index_update_is_not_reported_as_success(archive: Archive) -> None:
    run_id = add_messages(archive, "work", _around([]))
    _break_index(archive.root)
    outcome = update_search_index(archive, run_id)
    assert outcome.error is not None and "search index" in outcome.error
    assert [e["message"] for e in archive.catalog.run_errors(run_id)] == [outcome.error]


def test_reindex_of_hostile_messages_reports_them_in_one_line(
    tmp_path: Path, config_file: Callable[..., Path], cli: Cli, open_archive: OpenArchive
) -> None:
    hostile = [(plain("charset base64", "walrus", charset="base64"), None), (plain("x", "y"), LAST_INTERNALDATE)]
    hostile.append((with_pdf("bomb", pdf_bomb(inflated_mb=100)), None))
    with open_archive(tmp_path / "archive") as archive:
        add_messages(archive, "work", _around(hostile))
    result = cli.invoke(config_file(), "reindex")
    assert result.exit_code == 0, result.output
    assert "indexed 5 message(s)" in result.output and "2 message(s) partly unreadable" in result.output


def test_reindex_turns_any_failure_into_one_line(
    tmp_path: Path, config_file: Callable[..., Path], cli: Cli, open_archive: OpenArchive
) -> None:
    with open_archive(tmp_path / "archive") as archive:
        add_messages(archive, "work", _around([]))
    shutil.rmtree(tmp_path / "archive" / "index")  # the archive's layout makes it; a file where it belongs
    (tmp_path / "archive" / "index").write_text("not a directory")
    result = cli.invoke(config_file(), "reindex")
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    # the archive was made by the library under this process's umask: its exposure warning may come first
    lines = [line for line in result.output.strip().splitlines() if "WARNING archiver.permissions" not in line]
    assert len(lines) == 1 and lines[0].startswith("archiver: error: ") and "index" in lines[0]


def test_status_shows_the_messages_indexed_only_in_part(
    tmp_path: Path, config_file: Callable[..., Path], cli: Cli, open_archive: OpenArchive
) -> None:
    hostile = plain("charset base64", "walrus", charset="base64")
    with open_archive(tmp_path / "archive") as archive:
        add_messages(archive, "work", _around([(hostile, None)]))
        update_index(archive)
        blob = _blob(archive, hostile)
    config = config_file()
    text = cli.invoke(config, "status")
    assert "search index: 1 message(s) only partly indexed" in text.output
    data = json.loads(cli.invoke(config, "status", "--json").output)
    assert data["index_partly_indexed"] == 1
    assert data["index_problems"][0]["blob_id"] == blob and data["index_problems"][0]["subject"] == "charset base64"
    assert "unknown charset 'base64'" in data["index_problems"][0]["problems"][0]


def test_metrics_count_the_messages_indexed_only_in_part(make_metrics_app: Callable[[str], Flask]) -> None:
    app = make_metrics_app("")
    try:
        archive = app.extensions["archiver_archive"]
        add_messages(archive, "alpha", [("INBOX", plain("charset zlib", "walrus", charset="zlib"), (), None)])
        update_index(archive)
        text = app.test_client().get("/metrics").get_data(as_text=True)
    finally:
        app.extensions["archiver_archive"].close()
    assert re.search(r"^archiver_index_partly_indexed_messages 1\.0$", text, re.MULTILINE), text
