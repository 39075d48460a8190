"""Failure and recovery notifications (SMTP e-mail, webhook) and the health-check ping.

Alerts fire on *transitions*: the first failed run of an account sends a
failure alert, later failures of the same streak stay quiet (they are in the
logs, the catalog and ``/metrics``), and the first good run after it sends a
recovery alert.  The scheduler persists whether an alert is outstanding, so a
restart neither repeats nor loses it.  The health-check URL (healthchecks.io
style) is pinged after every successful run, and ``<url>/fail`` after a failed
one, so a dead daemon is noticed by the absence of pings.

Sending never raises: an unreachable mail server must not stop backups.  Every
problem is logged (with secrets masked) and the method returns False.
"""

from __future__ import annotations

import json
import logging
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING

from archiver import __version__
from archiver.config import AlertsConfig, Config, EmailAlertConfig
from archiver.daemon.status import RunOutcome
from archiver.errors import ArchiverError, AuthError
from archiver.logs import mask
from archiver.sources.connect import open_tcp
from archiver.sources.sasl import (
    BearerLogin,
    TokenRefused,
    account_tokens,
    choose_mechanism,
    login_with_token,
    server_reason,
)
from archiver.times import now_iso

if TYPE_CHECKING:
    from archiver.oauth.tokens import TokenSource

log = logging.getLogger("archiver.alerts")


class Notifier:
    """Sends the alerts configured in ``[alerts]`` for run outcomes."""

    def __init__(self, config: AlertsConfig, hostname: str | None = None, tokens: TokenSource | None = None) -> None:
        """``tokens``: the SMTP login presents an OAuth2 token from here (see :func:`alert_tokens`)."""
        self.config = config
        self.hostname = hostname or socket.gethostname()
        self.tokens = tokens

    def after_run(self, outcome: RunOutcome, was_failing: bool) -> bool:
        """Notify about ``outcome``; return whether the account is now in a failure streak."""
        if outcome.status == "ok":
            self.ping(success=True)
            if was_failing and self.config.on_recovery:
                self.notify("recovery", outcome)
            return False
        if outcome.failed:
            self.ping(success=False)
            if not was_failing and self.config.on_failure:
                self.notify("failure", outcome)
            return True
        return was_failing  # skipped or interrupted: nothing learnt

    def notify(self, event: str, outcome: RunOutcome) -> None:
        summary = self._summary(event, outcome)
        if self.config.email is not None:
            self.send_email(f"[archiver] {summary}", self._body(event, outcome, summary))
        if self.config.webhook_url:
            self.post_webhook(self._payload(event, outcome, summary))

    def _summary(self, event: str, outcome: RunOutcome) -> str:
        if event == "recovery":
            return f"backup of {outcome.account} on {self.hostname} works again"
        return f"backup of {outcome.account} on {self.hostname} {outcome.status}"

    def _body(self, event: str, outcome: RunOutcome, summary: str) -> str:
        lines = [
            f"{summary[0].upper()}{summary[1:]}.",
            "",
            f"account:  {outcome.account}",
            f"status:   {outcome.status}",
            f"run:      {outcome.run_id if outcome.run_id is not None else '-'}",
            f"new:      {outcome.messages_new} message(s), {outcome.bytes_fetched} bytes fetched",
            f"duration: {outcome.seconds:.1f} s",
            f"at:       {now_iso()}",
        ]
        if outcome.problems:
            lines += ["", "Problems:", *(f"  - {p}" for p in outcome.problems[:50])]
        if event == "failure":
            lines += ["", "Further failures of this account stay quiet until it recovers; see `archiver status`."]
        return mask("\n".join(lines) + "\n")

    def _payload(self, event: str, outcome: RunOutcome, summary: str) -> dict:
        return {
            "event": event,
            "text": mask(summary),  # Slack/Mattermost-compatible incoming webhooks show this field
            "account": outcome.account,
            "status": outcome.status,
            "run_id": outcome.run_id,
            "host": self.hostname,
            "at": now_iso(),
            "messages_new": outcome.messages_new,
            "bytes_fetched": outcome.bytes_fetched,
            "seconds": round(outcome.seconds, 3),
            "problems": [mask(p) for p in outcome.problems[:50]],
        }

    # -- transports ------------------------------------------------------------------------

    def send_email(self, subject: str, body: str) -> bool:
        settings = self.config.email
        if settings is None:
            return False
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = settings.sender
        message["To"] = ", ".join(settings.to)
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = make_msgid(domain=self.hostname)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(body)
        try:
            with _smtp_connection(settings, self.config.timeout, self.tokens) as smtp:
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException, ArchiverError) as exc:
            log.error("alert e-mail not sent via %s:%s: %s", settings.host, settings.port, mask(str(exc)))
            return False
        log.info("alert e-mail sent to=%s subject=%r", ",".join(settings.to), subject)
        return True

    def post_webhook(self, payload: dict) -> bool:
        url = self.config.webhook_url
        if not url:
            return False
        data = json.dumps(payload).encode()
        return self._request(url, data, "webhook")

    def ping(self, success: bool) -> bool:
        url = self.config.healthcheck_url
        if not url:
            return False
        return self._request(url if success else url.rstrip("/") + "/fail", None, "health-check ping")

    def _request(self, url: str, data: bytes | None, what: str) -> bool:
        headers = {"User-Agent": f"archiver/{__version__}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                response.read(4096)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.error("%s to %s failed: %s", what, _redact_url(url), mask(str(exc)))
            return False
        log.debug("%s sent to %s", what, _redact_url(url))
        return True


def alert_tokens(config: Config) -> TokenSource | None:
    """The token source of ``[alerts.email] oauth2_account`` (None: the alert mail logs in with a password)."""
    email = config.alerts.email
    if email is None or email.oauth2_account is None:
        return None
    return account_tokens(config.account(email.oauth2_account), config.archive.path)


class _BoundedSMTP(smtplib.SMTP):
    """``smtplib.SMTP`` whose timeout bounds the host name lookup too (see :func:`open_tcp`)."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:  # type: ignore[override]
        return open_tcp(host, port, timeout)


class _BoundedSMTP_SSL(smtplib.SMTP_SSL):
    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:  # type: ignore[override]
        return self.context.wrap_socket(open_tcp(host, port, timeout), server_hostname=self._host)


def _smtp_connection(settings: EmailAlertConfig, timeout: float, tokens: TokenSource | None = None) -> smtplib.SMTP:
    """A connected, authenticated SMTP client (465: TLS from the start; 587: STARTTLS; 25: plain)."""
    context = ssl.create_default_context(cafile=str(settings.tls_ca_file) if settings.tls_ca_file else None)
    if not settings.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    smtp: smtplib.SMTP
    if settings.security == "tls":
        smtp = _BoundedSMTP_SSL(settings.host, settings.port, timeout=timeout, context=context)
    else:
        smtp = _BoundedSMTP(settings.host, settings.port, timeout=timeout)
    try:
        if settings.security == "starttls":
            smtp.starttls(context=context)
        if tokens is not None:
            _token_login(smtp, settings, tokens)
        elif settings.username and settings.password is not None:
            smtp.login(settings.username, settings.password.resolve())
    except BaseException:
        smtp.close()
        raise
    return smtp


def _token_login(smtp: smtplib.SMTP, settings: EmailAlertConfig, tokens: TokenSource) -> None:
    """``AUTH XOAUTH2`` or ``AUTH OAUTHBEARER`` (RFC 4954) with the account's token; refused once, refreshed once."""
    where = f"alert e-mail via {settings.host}:{settings.port}"
    smtp.ehlo_or_helo_if_needed()
    mechanism = choose_mechanism("auto", smtp.esmtp_features.get("auth", "").split(), where)
    login = BearerLogin(settings.username or "", mechanism, settings.host, settings.port)

    if not login.user.isascii():  # smtplib sends SASL responses as ASCII (RFC 4954 has no SMTPUTF8 for AUTH)
        raise AuthError(f"{where}: the SMTP login {login.user!r} is not ASCII; set [alerts.email] username")

    def attempt(token: str) -> None:
        try:
            smtp.auth(mechanism, login.responder(token))
        except smtplib.SMTPAuthenticationError as exc:
            raise TokenRefused(server_reason(exc.smtp_error)) from None

    login_with_token(tokens, attempt, where, login)


def _redact_url(url: str) -> str:
    """Health-check URLs carry their secret in the path: log only scheme and host."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/…"
