"""Hostile messages on a real server: `archiver backup` archives them, indexes everything around them,
says what it could not index, and reports an index update that failed as the problem it is."""

from __future__ import annotations

import json

import pytest

from archiver.archive import Archive
from archiver.backup import run_backup
from tests.hostile_mail import LAST_INTERNALDATE, huge_subject, pdf_bomb, plain, with_pdf
from tests.integration.helpers import account_toml, load, run_cli, write_config

pytestmark = pytest.mark.integration


def _found(config_path, query: str) -> int:
    result = run_cli(config_path, "search", "--json", query)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["total"]


def test_backup_indexes_around_hostile_messages_and_reports_index_failures(dovecot, mail_user, tmp_path) -> None:
    dovecot.append(mail_user.name, "INBOX", plain("ordinary first", "lemonade before"))
    dovecot.append(mail_user.name, "INBOX", plain("charset base64", "walrus carpenter", charset="base64"))
    dovecot.append(mail_user.name, "INBOX", plain("far future", "tortoise date"), internaldate=LAST_INTERNALDATE)
    dovecot.append(mail_user.name, "INBOX", huge_subject(10, "hugesubject"))
    dovecot.append(mail_user.name, "INBOX", with_pdf("bombpdf", pdf_bomb(inflated_mb=512)))
    dovecot.append(mail_user.name, "INBOX", plain("ordinary last", "gooseberry after"))
    config_path = write_config(tmp_path, account_toml(dovecot, mail_user))

    first = run_cli(config_path, "backup")
    assert first.returncode == 0, first.stderr
    assert "6 new message(s)" in first.stdout
    assert "search index updated" in first.stdout and "3 message(s) only partly indexed" in first.stdout
    for word in ("lemonade", "walrus", "tortoise", "hugesubject", "bombpdf", "gooseberry"):
        assert _found(config_path, word) == 1, word
    status = json.loads(run_cli(config_path, "status", "--json").stdout)
    assert status["index_partly_indexed"] == 3
    reasons = "\n".join(line for entry in status["index_problems"] for line in entry["problems"])
    assert "unknown charset 'base64'" in reasons and "PDF stream inflating" in reasons and "header section" in reasons

    again = run_cli(config_path, "backup")  # nothing retried, nothing failing
    assert again.returncode == 0 and "0 new message(s)" in again.stdout, again.stderr

    index = tmp_path / "archive" / "index"
    (index / "g-broken").mkdir()
    (index / "CURRENT").write_text("g-broken\n")
    dovecot.append(mail_user.name, "INBOX", plain("after the break", "quokka"))
    broken = run_cli(config_path, "backup")
    assert broken.returncode == 1
    assert "search index updated" not in broken.stdout
    assert "archiver: problem: search index not updated" in broken.stderr and "Traceback" not in broken.stderr
    assert "archiver reindex" in broken.stderr

    rebuilt = run_cli(config_path, "reindex")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "indexed 7 message(s)" in rebuilt.stdout and "3 message(s) partly unreadable" in rebuilt.stdout
    assert _found(config_path, "quokka") == 1 and _found(config_path, "gooseberry") == 1


def test_a_scheduled_run_whose_index_update_failed_is_partial(dovecot, mail_user, tmp_path) -> None:
    """The daemon's path (run_backup indexing itself): the run is not ``ok``, so the failure alert fires."""
    dovecot.append(mail_user.name, "INBOX", plain("scheduled", "numbat"))
    config = load(write_config(tmp_path, account_toml(dovecot, mail_user)))
    index = tmp_path / "archive" / "index"
    (index / "g-broken").mkdir(parents=True)
    (index / "CURRENT").write_text("g-broken\n")
    with Archive(config.archive) as archive:
        report = run_backup(config, config.accounts[0], archive=archive)
        assert report.status == "partial" and report.messages_new == 1
        assert [p for p in report.problems if p.startswith("search index not updated")]
        assert archive.catalog.run_errors(report.run_id)[-1]["message"].startswith("search index not updated")
