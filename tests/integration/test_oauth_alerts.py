"""Alert e-mail over SMTP ``AUTH XOAUTH2`` with an account's OAuth2 grant, and the failure alert of a revoked grant.

The SMTP server is aiosmtpd with an ``auth_XOAUTH2`` hook that asks the real
loopback authorization server about every token (RFC 7662), as Microsoft's
and Google's submission servers do; it offers XOAUTH2 only, as Microsoft does.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import logging
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, AuthResult

from archiver.config import config_from_toml_text
from archiver.daemon.alerts import Notifier, alert_tokens
from archiver.daemon.scheduler import BackupScheduler
from archiver.daemon.status import RunOutcome
from archiver.devtools.sandbox import free_ports
from archiver.oauth.store import StoredToken, TokenFile
from tests.fixtures.oauth_helpers import REAUTHORISE, introspect, oauth_account_toml
from tests.fixtures.oauth_server import OAuthServer
from tests.fixtures.smtp_sink import MailSink, tls_context

pytestmark = pytest.mark.integration
SENDER = "alerts@example.org"  # the mailbox whose grant sends the alerts (a user of the authorization server only)


class TokenMailSink(MailSink):
    """Accepts ``AUTH XOAUTH2`` when the authorization server calls the token active and for the named user."""

    def __init__(self, authority: OAuthServer) -> None:
        super().__init__()
        self.authority = authority
        self.refusals = 0

    async def auth_XOAUTH2(self, server, args: list[str]) -> AuthResult:  # aiosmtpd's hook for AUTH XOAUTH2
        blob = args[1] if len(args) > 1 else await server.challenge_auth("")
        if blob is MISSING:
            return AuthResult(success=False, handled=True)
        text = base64.b64decode(blob).decode() if isinstance(blob, str) else blob.decode()
        fields = dict(part.split("=", 1) for part in text.split("\x01") if "=" in part)
        token = fields.get("auth", "").removeprefix("Bearer ")
        answer = introspect(self.authority, token) if token else {"active": False}
        if answer.get("active") and answer.get("username") == fields.get("user"):
            self.logins.append(f"XOAUTH2 {fields['user']}")
            return AuthResult(success=True, auth_data=fields["user"])
        self.refusals += 1
        await server.challenge_auth(json.dumps({"status": "401", "schemes": "bearer"}))  # then the client's empty line
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535


@pytest.fixture
def token_smtp(oauth_dovecot, oauth_authority) -> Iterator[tuple[TokenMailSink, int]]:
    sink = TokenMailSink(oauth_authority)
    port = free_ports(1)[0]
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=port,
        tls_context=tls_context(oauth_dovecot),
        require_starttls=True,
        auth_require_tls=True,
        auth_exclude_mechanism=["LOGIN", "PLAIN"],
    )
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def config_text(dovecot, authority: OAuthServer, user, tmp_path, smtp_port: int) -> str:
    sender = type("Sender", (), {"name": SENDER})
    return f"""
[archive]
path = {json.dumps(str(tmp_path / "archive"))}
{oauth_account_toml(dovecot, authority, user, "revoked")}
{oauth_account_toml(dovecot, authority, sender, "mailer")}
[alerts.email]
to = ["ops@example.org"]
from = "{SENDER}"
host = "127.0.0.1"
port = {smtp_port}
security = "starttls"
oauth2_account = "mailer"
tls_ca_file = {json.dumps(str(dovecot.ca_file))}
"""


def authorise(config, authority: OAuthServer, username: str, name: str) -> None:
    store = TokenFile(config.account(name).oauth2.token_path(config.archive.path), name)
    store.save(StoredToken.from_answer(authority.issue_tokens(username)))


def test_the_alert_mail_logs_in_with_a_token_refreshed_once(
    oauth_dovecot, oauth_authority, oauth_user, tmp_path, token_smtp
):
    sink, port = token_smtp
    config = config_from_toml_text(config_text(oauth_dovecot, oauth_authority, oauth_user, tmp_path, port), tmp_path)
    assert config.alerts.email.username == SENDER  # the account's own user name is the SMTP login
    authorise(config, oauth_authority, SENDER, "mailer")
    oauth_authority.expire_access_tokens(SENDER)  # the stored token died early: refused, refreshed, retried
    notifier = Notifier(config.alerts, hostname="box", tokens=alert_tokens(config))
    assert notifier.send_email("[archiver] test", "body\n") is True
    assert sink.logins == [f"XOAUTH2 {SENDER}"] and sink.refusals == 1
    assert oauth_authority.token_requests == ["refresh_token"]
    assert len(sink.messages) == 1


def test_a_revoked_grant_fails_the_run_and_the_alert_says_to_reauthorise(
    oauth_dovecot, oauth_authority, oauth_user, tmp_path, token_smtp
):
    sink, port = token_smtp
    text = config_text(oauth_dovecot, oauth_authority, oauth_user, tmp_path, port)
    config = config_from_toml_text(text, tmp_path / "archiver.toml")
    authorise(config, oauth_authority, oauth_user.name, "revoked")
    authorise(config, oauth_authority, SENDER, "mailer")
    oauth_authority.revoke_refresh_tokens(oauth_user.name)

    outcome = BackupScheduler(config, text).run_now("revoked")
    assert outcome.status == "failed" and REAUTHORISE.format("revoked") in outcome.problems
    assert len(sink.messages) == 1 and sink.logins == [f"XOAUTH2 {SENDER}"]
    body = email.message_from_bytes(sink.messages[0][2], policy=email.policy.default).get_content()
    assert f"  - {REAUTHORISE.format('revoked')}" in body.splitlines()


def test_a_refused_alert_login_is_logged_not_raised(
    oauth_dovecot, oauth_authority, oauth_user, tmp_path, token_smtp, caplog, monkeypatch
):
    """The mailer's grant is revoked too: the alert is not sent, the reason is logged, nothing raises."""
    monkeypatch.setattr(logging.getLogger("archiver"), "propagate", True)  # a CLI test in this process may stop it
    sink, port = token_smtp
    config = config_from_toml_text(config_text(oauth_dovecot, oauth_authority, oauth_user, tmp_path, port), tmp_path)
    authorise(config, oauth_authority, SENDER, "mailer")
    oauth_authority.revoke_refresh_tokens(SENDER)
    notifier = Notifier(config.alerts, hostname="box", tokens=alert_tokens(config))
    assert notifier.after_run(RunOutcome("revoked", "failed"), was_failing=False) is True
    assert sink.messages == []
    (line,) = {r.getMessage() for r in caplog.records if r.name == "archiver.alerts"}
    assert line.startswith("alert e-mail not sent via 127.0.0.1:") and line.endswith(REAUTHORISE.format("mailer"))
