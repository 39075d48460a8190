"""Hostile messages on a real server: `archiver backup` archives them, indexes everything around them,
says what it could not index, and reports an index update that failed as the problem it is."""

from __future__ import annotations

import json

import pytest

from archiver.backup import run_backup
from tests.fixtures.cli import Cli
from tests.fixtures.config import parse_config
from tests.fixtures.hostile_mail import LAST_INTERNALDATE, huge_subject, pdf_bomb, plain, with_pdf
from tests.fixtures.mail_server import account_toml

pytestmark = pytest.mark.integration


def _found(cli: Cli, config_path, query: str) -> int:
    result = cli(config_path, "search", "--json", query)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["total"]


def test_backup_indexes_around_hostile_messages_and_reports_index_failures(
    dovecot, mail_user, tmp_path, config_file, cli
) -> None:
    dovecot.append(mail_user.name, "INBOX", plain("ordinary first", "lemonade before"))
    dovecot.append(mail_user.name, "INBOX", plain("charset base64", "walrus carpenter", charset="base64"))
    dovecot.append(mail_user.name, "INBOX", plain("far future", "tortoise date"), internaldate=LAST_INTERNALDATE)
    dovecot.append(mail_user.name, "INBOX", huge_subject(10, "hugesubject"))
    dovecot.append(mail_user.name, "INBOX", with_pdf("bombpdf", pdf_bomb(inflated_mb=512)))
    dovecot.append(mail_user.name, "INBOX", plain("ordinary last", "gooseberry after"))
    config_path = config_file(account_toml(dovecot, mail_user))

    first = cli(config_path, "backup", "--wait-index")
    assert first.returncode == 0, first.stderr
    assert "6 new message(s)" in first.stdout
    assert "search index updated" in first.stdout and "3 message(s) only partly indexed" in first.stdout
    for word in ("lemonade", "walrus", "tortoise", "hugesubject", "bombpdf", "gooseberry"):
        assert _found(cli, config_path, word) == 1, word
    status = json.loads(cli(config_path, "status", "--json").stdout)
    assert status["index_partly_indexed"] == 3
    reasons = "\n".join(line for entry in status["index_problems"] for line in entry["problems"])
    assert "unknown charset 'base64'" in reasons and "PDF stream inflating" in reasons and "header section" in reasons

    again = cli(config_path, "backup", "--wait-index")  # nothing retried, nothing failing
    assert again.returncode == 0 and "0 new message(s)" in again.stdout, again.stderr

    index = tmp_path / "archive" / "index"
    (index / "g-broken").mkdir()
    (index / "CURRENT").write_text("g-broken\n")
    dovecot.append(mail_user.name, "INBOX", plain("after the break", "quokka"))
    broken = cli(config_path, "backup", "--wait-index")
    assert broken.returncode == 1
    assert "search index updated" not in broken.stdout
    assert "archiver: problem: search index not updated" in broken.stderr and "Traceback" not in broken.stderr
    assert "archiver reindex" in broken.stderr

    rebuilt = cli(config_path, "reindex")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "indexed 7 message(s)" in rebuilt.stdout and "3 message(s) partly unreadable" in rebuilt.stdout
    assert _found(cli, config_path, "quokka") == 1 and _found(cli, config_path, "gooseberry") == 1


def test_a_scheduled_run_whose_index_update_failed_is_partial(
    dovecot, mail_user, tmp_path, config_file, open_archive
) -> None:
    """The daemon's path (run_backup indexing itself): the run is not ``ok``, so the failure alert fires."""
    dovecot.append(mail_user.name, "INBOX", plain("scheduled", "numbat"))
    config = parse_config(config_file(account_toml(dovecot, mail_user)))
    index = tmp_path / "archive" / "index"
    (index / "g-broken").mkdir(parents=True)
    (index / "CURRENT").write_text("g-broken\n")
    with open_archive(config) as archive:
        report = run_backup(config, config.accounts[0], archive=archive)
        assert report.status == "partial" and report.messages_new == 1
        assert [p for p in report.problems if p.startswith("search index not updated")]
        assert archive.catalog.run_errors(report.run_id)[-1]["message"].startswith("search index not updated")
