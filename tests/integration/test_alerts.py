"""Failure and recovery alerts against a real SMTP server (aiosmtpd) and a real HTTP receiver.

The backups themselves are real (Dovecot, child processes); only the trigger
is direct (``run_now``) instead of waiting for a fire time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from archiver.config import AlertsConfig, EmailAlertConfig, config_from_toml_text
from archiver.daemon.alerts import Notifier
from archiver.daemon.scheduler import BackupScheduler
from archiver.daemon.status import RunOutcome
from archiver.devtools.sandbox import free_ports
from tests.fixtures.mail_server import account_toml
from tests.fixtures.smtp_sink import SMTP_PASSWORD, SMTP_USER, MailSink, tls_context

pytestmark = pytest.mark.integration


class Receiver(BaseHTTPRequestHandler):
    requests: list[tuple[str, str, bytes]]

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.requests.append((self.command, self.path, self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST = _record

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def smtp(dovecot) -> Iterator[tuple[MailSink, int]]:
    sink = MailSink()
    port = free_ports(1)[0]
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=port,
        tls_context=tls_context(dovecot),
        require_starttls=True,
        authenticator=sink,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@pytest.fixture
def http_receiver() -> Iterator[tuple[list, int]]:
    handler = type("Handler", (Receiver,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler.requests, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def alert_config(dovecot, user, tmp_path: Path, smtp_port: int, http_port: int, password: str) -> tuple:
    text = f"""
[archive]
path = {json.dumps(str(tmp_path / "archive"))}
{account_toml(dovecot, user, password=password)}
[alerts]
webhook_url = "http://127.0.0.1:{http_port}/hook"
healthcheck_url = "http://127.0.0.1:{http_port}/ping/5f2c"

[alerts.email]
to = ["ops@example.org"]
from = "archiver@example.org"
host = "127.0.0.1"
port = {smtp_port}
security = "starttls"
username = "{SMTP_USER}"
password_env = "ARCHIVER_TEST_SMTP_PASSWORD"
tls_ca_file = {json.dumps(str(dovecot.ca_file))}
"""
    return config_from_toml_text(text, tmp_path / "archiver.toml"), text


def test_failure_then_recovery_alerts(dovecot, mail_user, tmp_path, smtp, http_receiver, monkeypatch):
    sink, smtp_port = smtp
    requests, http_port = http_receiver
    monkeypatch.setenv("ARCHIVER_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    dovecot.append(mail_user.name, "INBOX", b"Subject: hello\r\n\r\nbody\r\n")

    config, text = alert_config(dovecot, mail_user, tmp_path, smtp_port, http_port, "wrong-password-1")
    failing = BackupScheduler(config, text)
    assert failing.run_now("acct").status == "failed"
    assert failing.run_now("acct").status == "failed"  # still failing: no second alert

    assert len(sink.messages) == 1
    sender, recipients, raw = sink.messages[0]
    assert (sender, recipients, sink.logins) == ("archiver@example.org", ["ops@example.org"], [SMTP_USER])
    assert b"Subject: [archiver] backup of acct on" in raw and b"failed" in raw
    assert b"wrong-password-1" not in raw and SMTP_PASSWORD.encode() not in raw
    hooks = [json.loads(body) for method, path, body in requests if path == "/hook"]
    assert [(h["event"], h["account"], h["status"]) for h in hooks] == [("failure", "acct", "failed")]
    assert hooks[0]["problems"] and "text" in hooks[0]

    # A new process (the state is in the catalog) with the right password: one recovery alert and a success ping.
    config, text = alert_config(dovecot, mail_user, tmp_path, smtp_port, http_port, mail_user.password)
    fixed = BackupScheduler(config, text)
    outcome = fixed.run_now("acct")
    assert (outcome.status, outcome.messages_new) == ("ok", 1)
    assert len(sink.messages) == 2 and b"works again" in sink.messages[1][2]
    hooks = [json.loads(body) for method, path, body in requests if path == "/hook"]
    assert [h["event"] for h in hooks] == ["failure", "recovery"]
    pings = [(method, path) for method, path, _ in requests if path.startswith("/ping")]
    assert pings == [("GET", "/ping/5f2c/fail"), ("GET", "/ping/5f2c/fail"), ("GET", "/ping/5f2c")]
    assert fixed.run_now("acct").status == "ok"  # still fine: nothing more to say, one more ping
    assert len(sink.messages) == 2 and [p for _, p, _ in requests].count("/ping/5f2c") == 2


def test_smtps_on_implicit_tls(dovecot, tmp_path):
    """Port-465 style: TLS from the first byte; without credentials (a relay that trusts the host)."""
    sink = MailSink()
    port = free_ports(1)[0]
    controller = Controller(sink, hostname="127.0.0.1", port=port, ssl_context=tls_context(dovecot))
    controller.start()
    try:
        email = EmailAlertConfig(
            to=("ops@example.org",),
            sender="archiver@example.org",
            host="127.0.0.1",
            port=port,
            security="tls",
            username=None,
            password=None,
            tls_ca_file=Path(dovecot.ca_file),
            tls_verify=True,
        )
        notifier = Notifier(AlertsConfig(email=email), hostname="box")
        notifier.notify("failure", RunOutcome("acct", "failed", problems=("acct: login refused",)))
    finally:
        controller.stop()
    assert len(sink.messages) == 1 and b"login refused" in sink.messages[0][2]


def test_unreachable_targets_never_raise(tmp_path):
    port = free_ports(1)[0]  # nothing listens here
    email = EmailAlertConfig(("a@b.c",), "x@b.c", "127.0.0.1", port, "none", None, None, None, True)
    notifier = Notifier(
        AlertsConfig(
            webhook_url=f"http://127.0.0.1:{port}/x", healthcheck_url=f"http://127.0.0.1:{port}/p", email=email
        )
    )
    assert notifier.after_run(RunOutcome("acct", "failed"), was_failing=False) is True
    assert notifier.send_email("s", "b") is False and notifier.ping(success=True) is False
