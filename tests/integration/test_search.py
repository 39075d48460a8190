"""Search on the real corpus and after real backups from Dovecot (incremental, during a run)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from archiver import index
from archiver.archive import Archive
from archiver.backup import run_backup
from archiver.index import ALL_ACCOUNTS as ALL
from archiver.mail.textextract import extract
from tests.fixtures.archives import OpenArchive, add_messages, archive_at
from tests.fixtures.config import parse_config
from tests.fixtures.corpus import CORPUS_DIR
from tests.fixtures.hostile_mail import broken_charset_with_pdf
from tests.fixtures.mail_server import account_toml

pytestmark = pytest.mark.integration

_WORD = re.compile(r"(?<![\w.@'’&+-])[^\W\d_]{5,20}(?![\w.@'’&+-])")
_NON_ASCII_WORD = re.compile(r"(?<![\w.@-])[^\W\d_a-zA-Z]{2,12}(?![\w.@-])")
NON_ASCII_TAGS = ("charset:koi8", "charset:big5", "charset:gb", "charset:iso-2022", "charset:windows-1251",
                  "charset:euc-", "charset:shift_jis")  # fmt: skip


def _ids(archive: Archive, query: str) -> set[str]:
    page = index.search(archive, query, accounts=ALL, page_size=1000, snippets=False)
    return {hit.blob_id for hit in page.hits}


@pytest.fixture(scope="module")
def corpus_archive(tmp_path_factory):
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS_DIR}")
    files = sorted(CORPUS_DIR.rglob("*.eml"))
    items = [(path.parent.name, path.read_bytes(), ("\\Seen",), None) for path in files]
    with archive_at(tmp_path_factory.mktemp("corpus") / "archive") as archive:
        add_messages(archive, "corpus", items)
        report = index.update_index(archive)
        assert report.indexed == archive.catalog.archive_totals()["blobs"]
        yield archive, files


def test_corpus_every_subject_and_body_word_finds_its_message(corpus_archive) -> None:
    archive, files = corpus_archive
    misses = []
    checked = 0
    for path in files[::3]:
        raw = path.read_bytes()
        blob_id = archive.store.put_batch([raw])[0].blob_id
        text = extract(raw)
        subject_words = _WORD.findall(text.subject)
        if subject_words:
            word = max(subject_words, key=len)
            checked += 1
            if blob_id not in _ids(archive, f'subject:"{word}"'):
                misses.append((path.name, "subject", word))
        body_words = _WORD.findall(text.body[:20000])
        if body_words:
            word = max(body_words, key=len)
            checked += 1
            if blob_id not in _ids(archive, f'"{word}"'):
                misses.append((path.name, "body", word))
    assert checked > 500
    assert misses == []


def test_corpus_non_ascii_charsets_are_searchable(corpus_archive, corpus_dir: Path) -> None:
    archive, _ = corpus_archive
    with (corpus_dir / "MANIFEST.tsv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle, delimiter="\t") if any(t in row["tags"] for t in NON_ASCII_TAGS)]
    found = 0
    for row in rows:
        raw = (corpus_dir / row["file"]).read_bytes()
        text = extract(raw)
        words = _NON_ASCII_WORD.findall(text.subject + " " + text.body[:5000])
        if not words:
            continue
        blob_id = archive.store.put_batch([raw])[0].blob_id
        assert blob_id in _ids(archive, words[0]), (row["file"], words[0])
        found += 1
    assert found >= 10  # Cyrillic (koi8-r, windows-1251), Chinese (big5, gb2312), Japanese (iso-2022-jp)


def test_corpus_cjk_and_pdf_attachment(corpus_archive, corpus_dir: Path) -> None:
    archive, _ = corpus_archive
    gtube = archive.store.put_batch([(corpus_dir / "spamassassin-tests/spam__extracttext__gtube_pdf.eml").read_bytes()])
    assert gtube[0].blob_id in _ids(archive, '"Generic Test for Unsolicited" has:attachment')
    flanker = archive.store.put_batch([(corpus_dir / "flanker/attached-pdf.eml").read_bytes()])[0].blob_id
    assert flanker in _ids(archive, "filename:*.pdf")


def _backup(open_archive: OpenArchive, config) -> None:
    with open_archive(config) as archive:
        report = run_backup(config, config.accounts[0], archive=archive)
        assert report.ok, report.problems


def test_backup_indexes_incrementally_and_search_cli(
    dovecot, mail_user, tmp_path, config_file, cli, open_archive
) -> None:
    dovecot.append(mail_user.name, "INBOX", broken_charset_with_pdf("zeppelin"), flags=("\\Seen",))
    config_path = config_file(account_toml(dovecot, mail_user))
    config = parse_config(config_path)
    _backup(open_archive, config)
    with open_archive(config) as archive:
        assert len(_ids(archive, "zeppelin")) == 1  # the PDF's text, in a message with a broken charset
        assert len(_ids(archive, "from:broken.example")) == 1
    dovecot.append(mail_user.name, "Archive", b"From: x@example.org\r\nSubject: second\r\n\r\nmarmalade tart\r\n")
    _backup(open_archive, config)
    result = cli(config_path, "search", "--json", "marmalade")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["total"] == 1 and data["total_exact"] is True
    assert data["hits"][0]["folders"] == [{"account": "acct", "folder": "Archive"}]
    assert data["hits"][0]["subject"] == "second" and data["hits"][0]["snippet_html"] == ""  # the catalog's only
    with_text = json.loads(cli(config_path, "search", "--json", "--snippets", "marmalade").stdout)
    assert "<mark>marmalade</mark>" in with_text["hits"][0]["snippet_html"]
    shown = cli(config_path, "search", "--snippets", "marmalade").stdout
    assert "marmalade tart" in shown and "marmalade tart" not in cli(config_path, "search", "marmalade").stdout
    bad = cli(config_path, "search", "(unclosed")
    assert bad.returncode == 1 and bad.stderr.startswith("archiver: error:") and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_search_while_a_backup_runs(dovecot, mail_user, tmp_path, config_file, cli, open_archive) -> None:
    for number in range(20):
        dovecot.append(mail_user.name, "INBOX", f"Subject: early {number}\r\n\r\npomegranate {number}\r\n".encode())
    config_path = config_file(account_toml(dovecot, mail_user), "batch_messages = 50")
    config = parse_config(config_path)
    _backup(open_archive, config)
    filler = "lorem ipsum dolor sit amet " * 40
    items = [(f"Subject: later {n}\r\nFrom: bulk{n}@example.org\r\n\r\n{filler}{n}\r\n".encode(), (), None)
             for n in range(3000)]  # fmt: skip
    dovecot.append_many(mail_user.name, "INBOX", items)
    command = cli.command(config_path, "backup", "--wait-index")
    backup = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    searches = 0
    try:
        with open_archive(config, readonly=True) as archive:
            while backup.poll() is None:
                assert index.search(archive, "pomegranate", accounts=ALL, snippets=False).total == 20
                searches += 1
                time.sleep(0.05)
    finally:
        _, err = backup.communicate(timeout=600)
    assert backup.returncode == 0, err
    assert searches > 5
    with open_archive(config, readonly=True) as archive:
        status = index.index_status(archive)
        assert status["behind"] == {"messages": 0, "changes": 0}
        assert status["documents"] == archive.catalog.archive_totals()["blobs"]
