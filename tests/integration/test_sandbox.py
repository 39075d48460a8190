"""The Dovecot sandbox does what the other integration tests assume it does.

These pin the server behaviour the archiver is built on: TLS that verifies with
``ca_file``, the ``/`` separator with non-ASCII names, UIDs from APPEND, POP3
UIDL in ``%08Xu%08Xv`` form, and what Dovecot does to line endings.
"""

from __future__ import annotations

import poplib
import socket
import ssl
import time
from datetime import UTC, datetime, timedelta, timezone

import imapclient
import pytest

from archiver.devtools.sandbox import DovecotSandbox
from tests.fixtures.mail_server import MailUser

pytestmark = pytest.mark.integration

CRLF_MESSAGE = b"From: a@example.org\r\nSubject: crlf\r\nMessage-ID: <crlf@x>\r\n\r\nline one\r\nline two\r\n"
LF_MESSAGE = b"From: a@example.org\nSubject: lf\nMessage-ID: <lf@x>\n\nline one\nline two\n"
NESTED = "Archiv/Übersicht/日本"


def verifying_context(dovecot: DovecotSandbox) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(dovecot.ca_file))


def greeting(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        return conn.recv(1000)


def test_imap_greeting_offers_starttls_and_login_shows_condstore_qresync(dovecot, mail_user: MailUser) -> None:
    assert b"STARTTLS" in greeting(dovecot.imap_port)
    assert b"LOGINDISABLED" not in greeting(dovecot.imap_port)  # plain logins allowed, tests need them
    client = dovecot.connect(mail_user.name, mail_user.password)
    try:
        capabilities = set(client.capabilities())
    finally:
        client.logout()
    assert {b"CONDSTORE", b"QRESYNC", b"UIDPLUS", b"MULTIAPPEND", b"LITERAL+", b"MOVE"} <= capabilities


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_starttls_verifies_against_ca_file(dovecot, mail_user: MailUser, host: str) -> None:
    client = imapclient.IMAPClient(host, port=dovecot.imap_port, ssl=False, timeout=10)
    try:
        client.starttls(verifying_context(dovecot))
        client.login(mail_user.name, mail_user.password)
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.logout()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_implicit_tls_verifies_against_ca_file(dovecot, mail_user: MailUser, host: str) -> None:
    client = imapclient.IMAPClient(host, port=dovecot.imaps_port, ssl=True, ssl_context=verifying_context(dovecot))
    try:
        client.login(mail_user.name, mail_user.password)
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.logout()


def test_certificate_is_not_trusted_without_ca_file(dovecot) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        imapclient.IMAPClient("127.0.0.1", port=dovecot.imaps_port, ssl=True, ssl_context=ssl.create_default_context())


def test_certificate_verifies_under_strict_x509_checks(dovecot) -> None:
    context = verifying_context(dovecot)
    context.verify_flags |= ssl.VERIFY_X509_STRICT  # Python 3.13 turns this on by default
    with (
        socket.create_connection(("127.0.0.1", dovecot.imaps_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.recv(100).startswith(b"* OK")


def test_wrong_password_is_refused_without_delay(dovecot, mail_user: MailUser) -> None:
    started = time.monotonic()
    with pytest.raises(imapclient.exceptions.LoginError):
        dovecot.connect(mail_user.name, mail_user.password + "x")
    assert time.monotonic() - started < 1.0  # auth_failure_delay = 0; Dovecot's default is 2 s


def test_users_are_usable_immediately_and_independent(dovecot, mail_user: MailUser) -> None:
    dovecot.append(mail_user.name, "INBOX", CRLF_MESSAGE)
    other = MailUser(mail_user.name + "-other", "other-secret")
    dovecot.add_user(other.name, other.password)
    assert dovecot.fetch_all(other.name, other.password, "INBOX") == {}
    assert len(dovecot.fetch_all(mail_user.name, mail_user.password, "INBOX")) == 1


@pytest.mark.parametrize("mode", ["plain", "stls", "pop3s"])
def test_pop3_login_stat_and_uidl_format(dovecot, mail_user: MailUser, mode: str) -> None:
    uids = [dovecot.append(mail_user.name, "INBOX", CRLF_MESSAGE), dovecot.append(mail_user.name, "INBOX", LF_MESSAGE)]
    client = dovecot.connect(mail_user.name, mail_user.password)
    validity = client.folder_status("INBOX", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    client.logout()
    sizes = [len(raw) for raw, _f, _d in dovecot.fetch_all(mail_user.name, mail_user.password, "INBOX").values()]

    if mode == "pop3s":
        pop = poplib.POP3_SSL("127.0.0.1", dovecot.pop3s_port, context=verifying_context(dovecot), timeout=10)
    else:
        pop = poplib.POP3("127.0.0.1", dovecot.pop3_port, timeout=10)
        assert "STLS" in pop.capa()
        if mode == "stls":
            pop.stls(verifying_context(dovecot))
    try:
        pop.user(mail_user.name)
        pop.pass_(mail_user.password)
        assert pop.stat() == (2, sum(sizes))  # POP3 counts the CRLF form, as IMAP's BODY[] returns it
        listing = [line.split() for line in pop.uidl()[1]]
        # %08Xu%08Xv: Dovecot's %X prints lowercase hex
        assert [uidl.decode() for _n, uidl in listing] == [f"{uid:08x}{validity:08x}" for uid in uids]
    finally:
        pop.quit()


def test_append_round_trips_bytes_flags_and_internaldate(dovecot, mail_user: MailUser) -> None:
    when = datetime(2021, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))
    uid = dovecot.append(mail_user.name, "INBOX", CRLF_MESSAGE, ["\\Seen", "\\Flagged", "$Work"], when)
    messages = dovecot.fetch_all(mail_user.name, mail_user.password, "INBOX")
    assert list(messages) == [uid]
    raw, flags, internaldate = messages[uid]
    assert raw == CRLF_MESSAGE
    assert set(flags) - {b"\\Recent"} == {b"\\Seen", b"\\Flagged", b"$Work"}
    assert internaldate == when  # the same instant; the offset comes back as the server's zone
    assert internaldate.utcoffset() is not None


def test_lf_only_input_comes_back_as_crlf(dovecot, mail_user: MailUser) -> None:
    """Dovecot stores maildir files with LF but always serves CRLF: bare-LF (and mixed) input is
    returned with every LF turned into CRLF, so byte-exact comparisons must use the server's bytes."""
    mixed = b"Subject: mixed\r\nX-A: 1\n\nbody\r\nmore\n"
    uids = dovecot.append_many(mail_user.name, "INBOX", [(LF_MESSAGE, (), None), (mixed, (), None)])
    messages = dovecot.fetch_all(mail_user.name, mail_user.password, "INBOX")
    assert messages[uids[0]][0] == LF_MESSAGE.replace(b"\n", b"\r\n")
    assert messages[uids[1]][0] == b"Subject: mixed\r\nX-A: 1\r\n\r\nbody\r\nmore\r\n"


def test_append_many_returns_uids_in_order(dovecot, mail_user: MailUser) -> None:
    when = datetime(2020, 1, 1, tzinfo=UTC)
    items = [(f"Subject: {n}\r\n\r\nbody {n}\r\n".encode(), ("\\Seen",) if n % 2 else (), when) for n in range(450)]
    uids = dovecot.append_many(mail_user.name, "Bulk", items)  # more than one MULTIAPPEND batch
    assert uids == list(range(1, 451))
    messages = dovecot.fetch_all(mail_user.name, mail_user.password, "Bulk")
    assert [messages[uid][0] for uid in uids] == [raw for raw, _f, _d in items]
    assert [b"\\Seen" in messages[uid][1] for uid in uids] == [n % 2 == 1 for n in range(450)]


def test_nested_non_ascii_folder_round_trip(dovecot, mail_user: MailUser) -> None:
    uid = dovecot.append(mail_user.name, NESTED, CRLF_MESSAGE, ["\\Answered"])
    client = dovecot.connect(mail_user.name, mail_user.password)
    try:
        listing = {name: delimiter for _flags, delimiter, name in client.list_folders()}
    finally:
        client.logout()
    assert listing == {"INBOX": b"/", "Archiv": b"/", "Archiv/Übersicht": b"/", NESTED: b"/"}
    raw, flags, _date = dovecot.fetch_all(mail_user.name, mail_user.password, NESTED)[uid]
    assert raw == CRLF_MESSAGE and b"\\Answered" in flags
    assert (dovecot.maildir(mail_user.name) / "Archiv").is_dir()  # LAYOUT=fs: one directory per level
    assert dovecot.doveadm("mailbox", "list", "-u", mail_user.name).stdout.split() == [
        "Archiv",
        "Archiv/Übersicht",
        NESTED,
        "INBOX",
    ]


def test_restart_keeps_ports_and_data(tmp_path) -> None:
    """Uses its own sandbox, which also proves two sandboxes run side by side."""
    with DovecotSandbox(tmp_path / "dovecot") as sandbox:
        sandbox.add_user("carol", "secret")
        uid = sandbox.append("carol", "Work/2024", CRLF_MESSAGE, ["\\Seen"])
        before = sandbox.fetch_all("carol", "secret", "Work/2024")
        ports, pid = (sandbox.imap_port, sandbox.imaps_port, sandbox.pop3_port, sandbox.pop3s_port), sandbox.pid
        sandbox.restart()
        assert (sandbox.imap_port, sandbox.imaps_port, sandbox.pop3_port, sandbox.pop3s_port) == ports
        assert sandbox.pid != pid
        assert sandbox.fetch_all("carol", "secret", "Work/2024") == before
        assert sandbox.append("carol", "Work/2024", LF_MESSAGE) == uid + 1
    assert sandbox.pid is None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", ports[0]), timeout=1)


def test_start_failure_raises_with_the_log(dovecot, tmp_path) -> None:
    clash = DovecotSandbox(tmp_path / "clash")
    clash.imap_port, clash.imaps_port = dovecot.imap_port, dovecot.imaps_port  # already taken
    clash.pop3_port, clash.pop3s_port = dovecot.pop3_port, dovecot.pop3s_port
    try:
        with pytest.raises(RuntimeError, match="Address already in use"):
            clash.start()
    finally:
        clash.close()
    assert clash.pid is None
    assert b"* OK" in greeting(dovecot.imap_port)  # the first sandbox is untouched
