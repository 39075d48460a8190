"""The account's ``timeout`` bounds the name lookup too: a dead DNS server is one line after the deadline, never a hang.

The system resolver cannot be pointed at a test server without root, so a stalled lookup is played by
``socket.getaddrinfo`` blocking for named hosts; addresses and the connection itself are real (Dovecot).
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from archiver.config import AlertsConfig, EmailAlertConfig
from archiver.daemon.alerts import Notifier
from archiver.errors import ConnectError
from archiver.sources.imap import ImapSource
from archiver.sources.pop3 import Pop3Source
from tests.fixtures.config import parse_config
from tests.fixtures.mail_server import account_toml

pytestmark = pytest.mark.integration


@pytest.fixture
def stalled_dns(monkeypatch):
    """Lookups of names hang until the test ends (as with an unreachable DNS server); addresses resolve."""
    real = socket.getaddrinfo
    released = threading.Event()

    def getaddrinfo(host, *args, **kwargs):
        if kwargs.get("flags", 0) & socket.AI_NUMERICHOST or host in ("127.0.0.1", "::1"):
            return real(host, *args, **kwargs)
        released.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "stalled")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    released.set()


@pytest.mark.parametrize(("protocol", "security"), [("imap", "starttls"), ("imap", "tls"), ("pop3", "tls")])
def test_stalled_lookup_fails_at_the_deadline(dovecot, mail_user, config_file, stalled_dns, protocol, security):
    toml = account_toml(dovecot, mail_user, protocol=protocol, security=security).replace("timeout = 20", "timeout = 1")
    toml = toml.replace('host = "127.0.0.1"', 'host = "mail.example.test"')
    account = parse_config(config_file(toml)).accounts[0]
    source = ImapSource(account) if protocol == "imap" else Pop3Source(account)
    started = time.monotonic()
    expected = r"mail\.example\.test:\d+: cannot resolve the host name \(no answer from DNS within 1 s\)"
    with pytest.raises(ConnectError, match=expected):
        source.connect()
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(("protocol", "security"), [("imap", "none"), ("imap", "tls"), ("pop3", "starttls")])
def test_named_hosts_still_connect(dovecot, mail_user, config_file, protocol, security):
    toml = account_toml(dovecot, mail_user, protocol=protocol, security=security)
    toml = toml.replace('host = "127.0.0.1"', 'host = "localhost"').replace("tls_ca_file", "tls_verify = false\n#")
    account = parse_config(config_file(toml)).accounts[0]
    source = ImapSource(account) if protocol == "imap" else Pop3Source(account)
    source.connect()
    source.close()


@pytest.mark.parametrize("security", ["none", "tls"])
def test_alert_mail_to_a_stalled_name_gives_up_at_the_deadline(stalled_dns, security):
    email = EmailAlertConfig(("a@b.c",), "x@b.c", "smtp.example.test", 465, security, None, None, None, True)
    notifier = Notifier(AlertsConfig(email=email, timeout=1))
    started = time.monotonic()
    assert notifier.send_email("subject", "body") is False
    assert time.monotonic() - started < 3
