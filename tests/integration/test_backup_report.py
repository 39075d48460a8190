"""One run report (archiver.backup.report) as the daemon's child and ``archiver backup --json`` give it."""

from __future__ import annotations

import json

import pytest

from archiver.daemon.child import SubprocessRunner
from tests.fixtures.config import parse_config
from tests.fixtures.mail_server import account_toml, fill_mailbox

pytestmark = pytest.mark.integration


def test_the_daemon_and_the_cli_read_the_same_report_of_a_run(dovecot, mail_user, config_file, cli):
    fill_mailbox(dovecot, mail_user, 30, seed=11)
    path = config_file(account_toml(dovecot, mail_user))
    config = parse_config(path)

    scheduled = SubprocessRunner()(path.read_text(), config, "acct")  # the daemon's child, as the scheduler runs it
    assert scheduled.status == "ok", scheduled.problems
    assert scheduled.run_id is not None and scheduled.messages_new == 30 and scheduled.bytes_stored > 0

    fill_mailbox(dovecot, mail_user, 5, seed=12)
    listed = cli(path, "backup", "--json", "--no-index")
    assert listed.returncode == 0, listed.stderr
    (report,) = json.loads(listed.stdout)
    assert report["account"] == "acct" and report["status"] == "ok" and report["problems"] == []
    assert report["run"] == scheduled.run_id + 1  # the next run of the same archive
    assert report["messages_new"] == 5 and sum(f["new"] for f in report["folders"]) == 5
    assert report["index_seconds"] is None and report["index_error"] is None
