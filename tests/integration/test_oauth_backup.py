"""`archiver backup` of ``auth = "oauth2"`` accounts against a real Dovecot ``oauth2`` passdb and a real
authorization server: a token that dies mid-run is refreshed and the run completes; a revoked grant is one
clear line wherever the operator looks (backup, status, the web pages), and the other accounts still run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from archiver.oauth.store import StoredToken, TokenFile
from tests.fixtures.archives import archived_hashes, placement_count
from tests.fixtures.config import parse_config, write_config
from tests.fixtures.mail_server import fill_mailbox, imap_session_pids, server_hashes
from tests.fixtures.oauth_helpers import REAUTHORISE, logins, oauth_account_toml
from tests.fixtures.oauth_server import OAuthServer
from tests.fixtures.web import log_in, quick_hash
from web import create_app

pytestmark = pytest.mark.integration


def authorise(config, server: OAuthServer, user, name: str, lifetime: int = 3600) -> TokenFile:
    """What `archiver auth NAME` leaves behind: the grant in ``<archive>/oauth/NAME.json``."""
    store = TokenFile(config.account(name).oauth2.token_path(config.archive.path), name)
    store.save(StoredToken.from_answer(server.issue_tokens(user.name, lifetime=lifetime)))
    return store


@pytest.mark.slow
def test_a_token_that_dies_mid_run_is_refreshed_and_the_run_completes(
    oauth_dovecot, oauth_authority, oauth_user, tmp_path, open_archive
):
    """The access token stops working at the provider mid-run and the connection drops (the server side is
    killed): the reconnect's login is refused, refreshed once, and the same run fetches every message."""
    folders = sorted(fill_mailbox(oauth_dovecot, oauth_user, 300, seed=31))
    path = write_config(
        tmp_path, oauth_account_toml(oauth_dovecot, oauth_authority, oauth_user, "work"), "batch_messages = 10"
    )
    config = parse_config(path)
    first = authorise(config, oauth_authority, oauth_user, "work").load().access_token
    command = [sys.executable, "-m", "archiver", "--config", str(path), "backup", "--json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while placement_count(config.archive.path) == 0 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    oauth_authority.expire_access_tokens(oauth_user.name)  # as if its hour had run out
    killed = imap_session_pids(oauth_dovecot, oauth_user.name)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)  # the server side of our connection dies: the client reconnects
    stdout, stderr = process.communicate(timeout=120)
    assert killed, "the backup finished before the connection could be dropped"
    assert process.returncode == 0, stderr
    (report,) = json.loads(stdout)
    assert report["status"] == "ok" and report["problems"] == [] and report["messages_new"] == 300
    assert oauth_authority.token_requests == ["refresh_token"]  # exactly one refresh, on the refused login
    assert "reconnected (attempt 1 of 5)" in stderr
    fresh = TokenFile(config.account("work").oauth2.token_path(config.archive.path), "work").load()
    assert fresh.access_token != first  # the refreshed (and rotated) grant was saved for the next run
    for secret in (first, fresh.access_token, fresh.refresh_token):
        assert secret not in stderr and secret not in stdout
    with open_archive(config) as archive:
        assert archived_hashes(archive.catalog, "work") == server_hashes(oauth_dovecot, oauth_user, folders)


def test_a_revoked_grant_is_one_line_everywhere_and_the_next_account_runs(
    oauth_dovecot, oauth_authority, oauth_user, tmp_path, cli
):
    folders = sorted(fill_mailbox(oauth_dovecot, oauth_user, 12, seed=5))
    accounts = oauth_account_toml(oauth_dovecot, oauth_authority, oauth_user, "revoked") + oauth_account_toml(
        oauth_dovecot, oauth_authority, oauth_user, "fine", protocol="pop3", extra='oauth2_mechanism = "xoauth2"'
    )
    path = write_config(tmp_path, accounts)
    config = parse_config(path)
    authorise(config, oauth_authority, oauth_user, "revoked")
    oauth_authority.revoke_refresh_tokens(oauth_user.name)  # the user withdrew the consent at the provider
    authorise(config, oauth_authority, oauth_user, "fine")  # a grant made afterwards

    result = cli(path, "backup", "--json")
    assert result.returncode == 1
    revoked, fine = json.loads(result.stdout)
    assert revoked["status"] == "failed" and revoked["problems"] == [REAUTHORISE.format("revoked")]
    assert fine["status"] == "ok" and fine["messages_new"] == len(server_hashes(oauth_dovecot, oauth_user, ["INBOX"]))
    assert f"archiver: problem: {REAUTHORISE.format('revoked')}" in result.stderr.splitlines()
    tokens_used = [m for m in logins(oauth_dovecot, oauth_user) if m != "PLAIN"]  # PLAIN: filling the mailbox
    assert tokens_used == ["XOAUTH2"]  # fine's, as configured (auto would take OAUTHBEARER)
    assert "Traceback" not in result.stderr

    status = cli(path, "status")
    assert REAUTHORISE.format("revoked") in status.stdout
    assert folders  # the mailbox was not empty: the fine account had work to do

    path.write_text(path.read_text() + f'[[web.users]]\nname = "root"\npassword_hash = "{quick_hash("root-pass")}"\n'
                    'admin = true\n')  # fmt: skip
    app = create_app(parse_config(path), testing=True)
    try:
        client = app.test_client()
        log_in(client, "root", "root-pass")
        for page in ("/", "/runs"):  # the accounts overview and the runs history
            assert REAUTHORISE.format("revoked") in client.get(page).get_data(as_text=True), page
    finally:
        app.extensions["archiver_archive"].close()
        app.extensions["archiver_sessions"].close()


def test_restore_into_an_oauth2_account(oauth_dovecot, oauth_authority, oauth_user, tmp_path, cli):
    """Back up one OAuth2 account and restore it into another whose stored token the server no longer takes."""
    folders = sorted(fill_mailbox(oauth_dovecot, oauth_user, 20, seed=9))
    target = type(oauth_user)(oauth_user.name + "t", oauth_user.password)
    oauth_dovecot.add_user(target.name, target.password)
    accounts = oauth_account_toml(oauth_dovecot, oauth_authority, oauth_user, "src") + oauth_account_toml(
        oauth_dovecot, oauth_authority, target, "dst"
    )
    path = write_config(tmp_path, accounts)
    config = parse_config(path)
    authorise(config, oauth_authority, oauth_user, "src")
    authorise(config, oauth_authority, target, "dst")
    assert cli(path, "backup", "--account", "src").returncode == 0
    oauth_authority.expire_access_tokens(target.name)

    result = cli(path, "restore", "--account", "src", "--to", "dst", "--prefix", "Back", "--json")
    assert result.returncode == 0, result.stderr
    assert oauth_authority.token_requests == ["refresh_token"]  # the target's token, refreshed once
    restored = sorted(server_hashes(oauth_dovecot, target, [f"Back/{name}" for name in folders]).values())
    assert restored == sorted(server_hashes(oauth_dovecot, oauth_user, folders).values())


def test_a_token_near_its_expiry_is_refreshed_before_it_is_presented(
    oauth_dovecot, oauth_authority, oauth_user, tmp_path, cli
):
    """Two minutes left (inside the five-minute margin): refreshed first, so the server never sees it refused."""
    oauth_dovecot.append(oauth_user.name, "INBOX", b"Subject: soon\r\n\r\nbody\r\n")
    path = write_config(tmp_path, oauth_account_toml(oauth_dovecot, oauth_authority, oauth_user, "work"))
    authorise(parse_config(path), oauth_authority, oauth_user, "work", lifetime=120)
    oauth_authority.expire_access_tokens(oauth_user.name)  # presented, it would be refused (and show below)
    oauth_authority.introspections.clear()
    result = cli(path, "backup", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["messages_new"] == 1
    assert oauth_authority.token_requests == ["refresh_token"]
    assert oauth_authority.introspections == [f"active {oauth_user.name}"]  # one login, with the fresh token
