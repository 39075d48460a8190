"""OAuth2 logins (SASL XOAUTH2 and OAUTHBEARER) over IMAP and POP3 against a real Dovecot ``oauth2`` passdb.

Dovecot checks every token by asking the real loopback authorization server
(RFC 7662 introspection); nothing here is mocked.  The account's configured
password is wrong on purpose: a login that works proves the token was used.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path

import imapclient
import pytest
from imapclient.exceptions import LoginError

from archiver.errors import AuthError, AuthorisationExpired
from archiver.oauth.tokens import CommandTokenSource, RefreshingTokenSource, TokenSource
from archiver.sources.imap import ImapSource
from archiver.sources.pop3 import Pop3Source
from tests.fixtures.config import parse_config, write_config
from tests.fixtures.mail_server import account_toml
from tests.fixtures.oauth_helpers import client_for, logins, stored_grant
from tests.fixtures.oauth_server import OAuthServer

pytestmark = pytest.mark.integration
MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: token login\r\nMessage-ID: <t@x>\r\n\r\nbody\r\n"


def account(dovecot, user, tmp_path: Path, protocol: str = "imap"):
    """The account as configured, with a password the server does not accept."""
    text = account_toml(dovecot, user, password="not-the-password", protocol=protocol)
    return parse_config(write_config(tmp_path, text)).accounts[0]


def grant(server: OAuthServer, tmp_path: Path, user, lifetime: int = 3600) -> RefreshingTokenSource:
    return RefreshingTokenSource(client_for(server), stored_grant(server, tmp_path, user.name, lifetime))


def read_inbox(source: ImapSource | Pop3Source) -> list[str]:
    """sha256 of every message the logged-in source can read in INBOX."""
    if isinstance(source, Pop3Source):
        return [hashlib.sha256(source.fetch(entry)).hexdigest() for entry in source.listing()]
    source.examine("INBOX")
    fetched, _missing = source.fetch(source.all_uids())
    return [hashlib.sha256(message.raw).hexdigest() for message in fetched]  # small: bytes, not spooled


def open_source(protocol: str, acct, tokens: TokenSource, mechanism: str = "auto") -> ImapSource | Pop3Source:
    kind = ImapSource if protocol == "imap" else Pop3Source
    return kind(acct, tokens=tokens, mechanism=mechanism).connect()


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
@pytest.mark.parametrize("mechanism", ["xoauth2", "oauthbearer"])
def test_a_token_logs_in_and_the_mail_can_be_read(
    oauth_dovecot, oauth_authority, oauth_user, tmp_path, protocol, mechanism
):
    oauth_dovecot.append(oauth_user.name, "INBOX", MESSAGE)
    source = open_source(
        protocol,
        account(oauth_dovecot, oauth_user, tmp_path, protocol),
        grant(oauth_authority, tmp_path, oauth_user),
        mechanism,
    )
    try:
        assert read_inbox(source) == [hashlib.sha256(MESSAGE).hexdigest()]
    finally:
        source.close()
    assert logins(oauth_dovecot, oauth_user)[-1] == mechanism.upper()
    assert oauth_authority.token_requests == []  # the stored token was good: no refresh


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_auto_prefers_oauthbearer(oauth_dovecot, oauth_authority, oauth_user, tmp_path, protocol):
    source = open_source(
        protocol, account(oauth_dovecot, oauth_user, tmp_path, protocol), grant(oauth_authority, tmp_path, oauth_user)
    )
    source.close()
    assert logins(oauth_dovecot, oauth_user) == ["OAUTHBEARER"]


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_refused_token_is_refreshed_once_and_the_login_goes_on(
    oauth_dovecot, oauth_authority, oauth_user, tmp_path, protocol, caplog, monkeypatch
):
    """The stored token looks valid for an hour, but the provider expired it early: one refresh, one retry."""
    monkeypatch.setattr(logging.getLogger("archiver"), "propagate", True)  # a CLI test in this process may stop it
    tokens = grant(oauth_authority, tmp_path, oauth_user)
    stale = tokens.access_token()
    oauth_authority.expire_access_tokens(oauth_user.name)
    oauth_dovecot.append(oauth_user.name, "INBOX", MESSAGE)
    with caplog.at_level(logging.INFO, logger="archiver"):
        source = open_source(protocol, account(oauth_dovecot, oauth_user, tmp_path, protocol), tokens)
    try:
        assert read_inbox(source) == [hashlib.sha256(MESSAGE).hexdigest()]
    finally:
        source.close()
    assert oauth_authority.token_requests == ["refresh_token"]
    assert tokens.access_token() != stale
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("archiver"))  # not the test server's
    assert "refused" in ours and stale not in ours and tokens.access_token() not in ours


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_revoked_grant_says_to_reauthorise(oauth_dovecot, oauth_authority, oauth_user, tmp_path, protocol):
    tokens = grant(oauth_authority, tmp_path, oauth_user)
    oauth_authority.revoke_refresh_tokens(oauth_user.name)
    with pytest.raises(AuthorisationExpired) as caught:
        open_source(protocol, account(oauth_dovecot, oauth_user, tmp_path, protocol), tokens)
    assert str(caught.value) == (
        "account work: the OAuth2 authorisation was revoked or has expired; re-authorise with `archiver auth work`"
    )
    assert logins(oauth_dovecot, oauth_user) == []


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_token_of_another_mailbox_is_refused_twice_then_one_line(
    oauth_dovecot, oauth_authority, oauth_user, tmp_path, protocol
):
    """A grant for someone else: the fresh token is refused too; the line says what to check, no token in it."""
    tokens = RefreshingTokenSource(client_for(oauth_authority), stored_grant(oauth_authority, tmp_path, "someone-else"))
    with pytest.raises(AuthError) as caught:
        open_source(protocol, account(oauth_dovecot, oauth_user, tmp_path, protocol), tokens)
    message = str(caught.value)
    assert "login refused for user" in message and "even with a fresh OAuth2 token" in message
    assert "\n" not in message and tokens.access_token() not in message
    assert oauth_authority.token_requests == ["refresh_token"]  # exactly one retry


TOKEN_HELPER = """
import json, pathlib, sys
runs = pathlib.Path(sys.argv[1])
n = int(runs.read_text()) + 1 if runs.exists() else 1
runs.write_text(str(n))
issued = json.loads(pathlib.Path(sys.argv[2]).read_text())["access_token"]
print("a-token-the-server-never-issued" if n == 1 else issued)
"""


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_token_command_refused_once_then_a_fresh_token(oauth_dovecot, oauth_authority, oauth_user, tmp_path, protocol):
    """The helper's first token is refused; it is run once more and its second token logs in."""
    script, runs, issued = tmp_path / "helper.py", tmp_path / "runs", tmp_path / "issued.json"
    script.write_text(TOKEN_HELPER)
    issued.write_text(__import__("json").dumps(oauth_authority.issue_tokens(oauth_user.name)))
    tokens = CommandTokenSource("work", [sys.executable, str(script), str(runs), str(issued)])
    source = open_source(protocol, account(oauth_dovecot, oauth_user, tmp_path, protocol), tokens)
    source.close()
    assert runs.read_text() == "2"
    assert logins(oauth_dovecot, oauth_user) == ["OAUTHBEARER"]


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_server_without_token_logins_gets_one_line(dovecot, oauth_authority, mail_user, tmp_path, protocol):
    """The plain sandbox offers PLAIN and LOGIN only: say so instead of trying a login that can only fail."""
    with pytest.raises(AuthError) as caught:
        open_source(
            protocol, account(dovecot, mail_user, tmp_path, protocol), grant(oauth_authority, tmp_path, mail_user)
        )
    assert "the server offers no OAuth2 login (SASL OAUTHBEARER or XOAUTH2; it offers LOGIN, PLAIN)" in str(
        caught.value
    )


def test_a_forced_mechanism_the_server_lacks_is_named(dovecot, oauth_authority, mail_user, tmp_path):
    with pytest.raises(AuthError, match=r"does not offer XOAUTH2 \(it offers LOGIN, PLAIN\); set oauth2_mechanism"):
        open_source(
            "imap", account(dovecot, mail_user, tmp_path), grant(oauth_authority, tmp_path, mail_user), "xoauth2"
        )


def test_the_sandbox_takes_an_issued_token_and_refuses_it_once_expired_or_revoked(
    oauth_dovecot, oauth_authority, oauth_user
):
    """The fixture itself, through imapclient's own XOAUTH2 (not our code): no auth cache hides a dead token."""

    def works(token: str) -> bool:
        client = imapclient.IMAPClient(oauth_dovecot.host, port=oauth_dovecot.imap_port, ssl=False, timeout=10)
        try:
            client.oauth2_login(oauth_user.name, token)
        except LoginError:
            return False
        finally:
            client.shutdown()
        return True

    first = oauth_authority.issue_tokens(oauth_user.name)["access_token"]
    assert works(first)
    oauth_authority.expire_access_tokens(oauth_user.name)
    assert not works(first)  # the very next login: nothing cached
    second = oauth_authority.issue_tokens(oauth_user.name)["access_token"]
    assert works(second)
    oauth_authority.revoke_refresh_tokens(oauth_user.name)
    assert not works(second)
    assert not works(oauth_authority.issue_tokens("someone-else")["access_token"])  # a token of another user
    oauth_dovecot.connect(oauth_user.name).logout()  # password logins keep working beside the oauth2 passdb
