"""Back up now in the web UI runs the scheduler's backup child: real Dovecot, a real child process, the job page."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.fixtures.archives import archived_hashes
from tests.fixtures.config import parse_config, write_config
from tests.fixtures.mail_server import account_toml, fill_mailbox, server_hashes
from tests.fixtures.web import log_in, quick_hash
from web import close_app, create_app
from web.jobs import Job, wait

pytestmark = pytest.mark.integration

ADMIN = f"""
[[web.users]]
name = "root"
password_hash = "{quick_hash("root-pass")}"
admin = true
"""


@pytest.fixture
def app(tmp_path: Path, dovecot, mail_user) -> Flask:
    application = create_app(
        parse_config(write_config(tmp_path, account_toml(dovecot, mail_user) + ADMIN)), testing=True
    )
    yield application
    close_app(application)


def _back_up_now(app: Flask, client: FlaskClient) -> tuple[Job, str]:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/runs").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    response = client.post("/backup/acct", data={"csrf_token": token})
    assert response.status_code == 302
    job_url = response.headers["Location"]
    job = app.extensions["archiver_jobs"].get(job_url.rsplit("/", 1)[1])
    wait(job, 120)
    assert not job.running
    return job, client.get(job_url).get_data(as_text=True)


def test_back_up_now_runs_the_backup_child_and_shows_its_progress_and_report(app, dovecot, mail_user, open_archive):
    folders = fill_mailbox(dovecot, mail_user, 40)
    client = app.test_client()
    assert log_in(client, "root", "root-pass").status_code == 302

    job, page = _back_up_now(app, client)

    assert job.error is None and job.result.status == "ok" and job.result.messages_new == 40
    # The child's progress reached the job: every message it had to download (copies are adopted, not fetched).
    assert 30 < job.done_messages == job.total_messages <= 40 and job.done_bytes == job.total_bytes > 0
    assert f"run {job.result.run_id}" in page and "40 new messages" in page
    assert set(folders) <= {f.name for f in job.result.folders}
    assert f'<td>INBOX</td><td class="num">{len(folders["INBOX"])}</td>' in page  # the folder table of the report
    with open_archive(app.extensions["archiver_config"], readonly=True) as archive:
        assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, folders)
    holder = (Path(app.extensions["archiver_config"].archive.path) / "locks" / "acct.lock").read_text()
    assert holder.isdigit() and int(holder) != os.getpid()  # run in a child, as the scheduler runs it


def test_back_up_now_while_another_backup_holds_the_account_says_so(app, open_archive):
    client = app.test_client()
    assert log_in(client, "root", "root-pass").status_code == 302
    with open_archive(app.extensions["archiver_config"]) as archive, archive.account_lock("acct"):
        job, page = _back_up_now(app, client)
    assert job.error is None and job.result.status == "skipped"
    assert "Backup skipped" in page and f"already running (pid {os.getpid()})" in page
