"""``archiver backup`` off a terminal: the index update logs its progress at INFO, and ``--json`` stays pure JSON."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.mail_server import account_toml, fill_mailbox

pytestmark = pytest.mark.integration


def test_backup_logs_the_index_update_and_json_prints_only_the_report(dovecot, mail_user, config_file, cli):
    fill_mailbox(dovecot, mail_user, 30, seed=21)
    path = config_file(account_toml(dovecot, mail_user))

    quiet = cli(path, "--log-level", "INFO", "backup", "--wait-index", "--json")
    assert quiet.returncode == 0, quiet.stderr
    (report,) = json.loads(quiet.stdout)  # the whole of stdout is the report
    assert report["messages_new"] == 30 and report["index_error"] is None and report["index_seconds"] > 0
    assert "indexing" not in quiet.stderr and "indexed" not in quiet.stderr

    fill_mailbox(dovecot, mail_user, 5, seed=22)
    told = cli(path, "--log-level", "INFO", "backup", "--wait-index")
    assert told.returncode == 0, told.stderr
    assert "indexing 5 message(s) for search" in told.stderr and "indexed 5 of 5 message(s)" in told.stderr
    assert "search index updated" in told.stdout
