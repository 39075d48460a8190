"""Account discovery against a real web server and a real DNS server on loopback.

What the user cares about: the server that ends up in their config (host, port, TLS), that a
hostile or broken answer is one line saying what was wrong (never a traceback, never a hang),
and that a password never goes to a server without TLS unless they asked for it.
"""

from __future__ import annotations

import time

import pytest
import requests

from archiver.devtools.sandbox import make_certificate
from archiver.discovery import autoconfig
from archiver.discovery.discover import discover
from archiver.errors import DiscoveryError
from tests.fixtures.discovery_servers import DnsServer, Page, WebServer, autoconfig_xml

EMAIL = "alice@example.test"
PATH = "/mail/config-v1.1.xml"


def _discover(web: WebServer, dns: DnsServer, email: str = EMAIL, **options):
    return discover(email, autoconfig=[web.url(f"{PATH}?emailaddress={email}")], dns_server=dns.address, **options)


def test_autoconfig_file_gives_the_server_with_implicit_tls_first(web_server, dns_server):
    web_server.pages[PATH] = Page(
        autoconfig_xml(
            ("imap", "mail.%EMAILDOMAIN%", 143, "STARTTLS"),
            ("imap", "imap.example.test", 993, "SSL"),
            ("pop3", "pop.example.test", 995, "SSL"),
            username="%EMAILLOCALPART%",
        )
    )
    found = _discover(web_server, dns_server)
    assert (found.server.host, found.server.port, found.server.security) == ("imap.example.test", 993, "tls")
    assert found.server.username == "alice"
    assert found.origin.startswith("autoconfig http://127.0.0.1")
    assert web_server.requests == [f"{PATH}?emailaddress={EMAIL}"]

    pop = _discover(web_server, dns_server, protocol="pop3")
    assert (pop.server.host, pop.server.port, pop.server.security) == ("pop.example.test", 995, "tls")


def test_starttls_is_taken_when_the_file_offers_nothing_better(web_server, dns_server):
    web_server.pages[PATH] = Page(autoconfig_xml(("imap", "imap.example.test", 143, "STARTTLS")))
    found = _discover(web_server, dns_server)
    assert (found.server.port, found.server.security) == (143, "starttls")


def test_plain_text_only_is_refused_unless_allowed(web_server, dns_server):
    web_server.pages[PATH] = Page(autoconfig_xml(("imap", "imap.example.test", 143, "plain")))
    with pytest.raises(DiscoveryError) as caught:
        _discover(web_server, dns_server)
    message = str(caught.value)
    assert "without TLS" in message and "--allow-plaintext" in message and "\n" not in message

    found = _discover(web_server, dns_server, allow_plaintext=True)
    assert (found.server.port, found.server.security) == (143, "none")


def test_plain_text_autoconfig_loses_to_srv_records_with_tls(web_server, dns_server):
    web_server.pages[PATH] = Page(autoconfig_xml(("imap", "imap.example.test", 143, "plain")))
    dns_server.add("_imaps._tcp.example.test", "SRV", "0 1 993 imap.example.test.")
    found = _discover(web_server, dns_server)
    assert (found.server.port, found.server.security) == (993, "tls")
    assert found.origin == "SRV records of example.test"
    assert any("without TLS" in note for note in found.notes)


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (Page(b"<html><body>Welcome to nginx!</body></html>", headers={"Content-Type": "text/html"}), "HTML page"),
        (Page(b"<!DOCTYPE html><html><p>Not here</p></html>", headers={"Content-Type": "text/xml"}), "HTML page"),
        (Page(b"<clientConfig><emailProvider><incomingServer"), "not well-formed XML"),
        (Page(b'<?xml version="1.0"?><rss version="2.0"><channel/></rss>'), "not an autoconfig file"),
        (Page(b"<clientConfig version='1.1'><emailProvider/></clientConfig>"), "no IMAP or POP3 server"),
        (
            Page(
                b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
                b"<clientConfig>&lol2;</clientConfig>"
            ),
            "DTD or XML entities",
        ),
        (Page(autoconfig_xml(("imap", "imap example test", 993, "SSL"))), "is not a host name"),
        (Page(autoconfig_xml(("imap", "imap.example.test", 99999, "SSL"))), "is not a port number"),
        (Page(b"oops", status=500), "HTTP 500"),
    ],
    ids=["html-type", "html-body", "truncated", "rss", "empty", "entities", "bad-host", "bad-port", "http-500"],
)
def test_a_hostile_or_broken_autoconfig_answer_is_one_line(web_server, dns_server, page, expected):
    web_server.pages[PATH] = page
    with pytest.raises(DiscoveryError) as caught:
        _discover(web_server, dns_server)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message and web_server.url(PATH) in message


def test_a_huge_answer_is_refused_without_reading_it_all(web_server, dns_server):
    sent = []

    def endless():
        chunk = b"<!-- padding -->" * 4096
        for _ in range(10_000):  # 640 MB if the client kept reading
            sent.append(len(chunk))
            yield chunk

    web_server.pages[PATH] = Page(endless, headers={"Content-Type": "text/xml"})
    with pytest.raises(DiscoveryError, match="larger than 1048576 bytes"):
        _discover(web_server, dns_server)
    assert sum(sent) < 64 * autoconfig.MAX_BYTES

    web_server.pages[PATH] = Page(b"", headers={"Content-Type": "text/xml", "Content-Length": str(2**31)})
    with pytest.raises(DiscoveryError, match="2147483648 bytes, more than"):
        _discover(web_server, dns_server)


def test_a_trickling_answer_is_given_up_at_the_deadline(web_server, dns_server, monkeypatch):
    monkeypatch.setattr(autoconfig, "DEADLINE", 1.0)

    def trickle():
        yield b"<clientConfig>"
        for _ in range(50):
            time.sleep(0.1)
            yield b" "

    web_server.pages[PATH] = Page(trickle)
    started = time.monotonic()
    with pytest.raises(DiscoveryError, match="took longer than 1 s"):
        _discover(web_server, dns_server)
    assert time.monotonic() - started < 4


def test_redirects_are_followed_a_few_times_only(web_server, dns_server):
    web_server.pages[PATH] = Page(status=302, headers={"Location": "/moved.xml"})
    web_server.pages["/moved.xml"] = Page(autoconfig_xml(("imap", "imap.example.test", 993, "SSL")))
    assert _discover(web_server, dns_server).server.host == "imap.example.test"

    web_server.pages["/moved.xml"] = Page(status=302, headers={"Location": "/moved.xml"})
    with pytest.raises(DiscoveryError, match="more than 3 redirects"):
        _discover(web_server, dns_server)


def test_srv_records_by_priority_and_weight_and_dot_means_not_offered(web_server, dns_server):
    dns_server.add(
        "_imaps._tcp.example.test",
        "SRV",
        "20 100 993 backup.example.test.",
        "10 5 993 light.example.test.",
        "10 60 993 heavy.example.test.",
    )
    assert _discover(web_server, dns_server).server.host == "heavy.example.test"

    dns_server.records.clear()
    dns_server.add("_imaps._tcp.example.test", "SRV", "0 0 0 .")
    dns_server.add("_imap._tcp.example.test", "SRV", "0 1 143 mail.example.test.")
    found = _discover(web_server, dns_server)
    assert (found.server.host, found.server.port, found.server.security) == ("mail.example.test", 143, "starttls")
    assert found.server.username == EMAIL  # RFC 6186: the whole address

    dns_server.records.clear()
    dns_server.add("_pop3s._tcp.example.test", "SRV", "0 1 995 pop.example.test.")
    pop = _discover(web_server, dns_server, protocol="pop3")
    assert (pop.server.host, pop.server.port, pop.server.security) == ("pop.example.test", 995, "tls")


def test_mx_hosts_reveal_a_hosted_domain(web_server, dns_server):
    dns_server.add("example.test", "MX", "1 aspmx.l.google.com.", "5 alt1.aspmx.l.google.com.")
    found = _discover(web_server, dns_server)
    assert found.preset == "gmail" and found.server.host == "imap.gmail.com"
    assert found.server.auth == "oauth2" and found.server.oauth2_provider == "google"
    assert web_server.requests == []  # a recognised provider needs no autoconfig fetch

    dns_server.records.clear()
    dns_server.add("example.test", "MX", "0 example-test.mail.protection.outlook.com.")
    assert _discover(web_server, dns_server).preset == "microsoft365"

    dns_server.records.clear()
    dns_server.add("example.test", "MX", "10 mx.notgoogle.com.")
    with pytest.raises(DiscoveryError):
        _discover(web_server, dns_server)


def test_nothing_found_says_what_each_step_gave(web_server, dns_server):
    with pytest.raises(DiscoveryError) as caught:
        _discover(web_server, dns_server)
    message = str(caught.value)
    assert "no MX records" in message and "none published" in message and "no SRV records" in message
    assert "\n" not in message


@pytest.mark.slow
def test_a_silent_dns_server_costs_seconds_not_minutes(web_server):
    import socket

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        started = time.monotonic()
        with pytest.raises(DiscoveryError, match="DNS did not answer"):
            discover(EMAIL, autoconfig=[], dns_server=f"127.0.0.1:{silent.getsockname()[1]}")
        assert time.monotonic() - started < 10  # one lookup's lifetime, not one per name
    finally:
        silent.close()


def test_an_oauth2_server_of_a_known_provider_gets_its_token_provider(web_server, dns_server):
    web_server.pages[PATH] = Page(
        b"""<clientConfig version="1.1"><emailProvider id="example.test">
        <incomingServer type="imap"><hostname>outlook.office365.com</hostname><port>993</port>
        <socketType>SSL</socketType><username>%EMAILADDRESS%</username>
        <authentication>OAuth2</authentication></incomingServer></emailProvider></clientConfig>"""
    )
    server = _discover(web_server, dns_server).server
    assert (server.host, server.auth, server.oauth2_provider) == ("outlook.office365.com", "oauth2", "microsoft")


@pytest.fixture
def https_server(tmp_path):
    certificate = make_certificate(tmp_path)
    server = WebServer(certificate)
    yield server, certificate[0]
    server.stop()


def test_an_untrusted_certificate_is_said_and_https_may_not_redirect_to_http(https_server, web_server, dns_server):
    server, ca_file = https_server
    server.pages[PATH] = Page(autoconfig_xml(("imap", "imap.example.test", 993, "SSL")))
    with pytest.raises(DiscoveryError, match="TLS certificate is not trusted"):
        discover(EMAIL, autoconfig=[server.url(PATH)], dns_server=dns_server.address)

    trusting = requests.Session()
    trusting.verify = str(ca_file)
    trusting.trust_env = False  # else $REQUESTS_CA_BUNDLE wins over session.verify

    def fetch(url: str) -> bytes | None:
        return autoconfig.fetch_autoconfig(url, session=trusting)

    assert discover(EMAIL, autoconfig=[server.url(PATH)], dns_server=dns_server.address, fetch=fetch).server.port == 993

    web_server.pages[PATH] = Page(autoconfig_xml(("imap", "evil.example.test", 993, "SSL")))
    server.pages[PATH] = Page(status=301, headers={"Location": web_server.url(PATH)})
    with pytest.raises(DiscoveryError, match="redirects away from HTTPS"):
        discover(EMAIL, autoconfig=[server.url(PATH)], dns_server=dns_server.address, fetch=fetch)
    assert web_server.requests == []
