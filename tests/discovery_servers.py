"""Loopback stand-ins for what account discovery asks: a web server for autoconfig files, a DNS server.

Tests cannot serve ``autoconfig.example.org`` or answer for ``_imaps._tcp.example.org`` on the
real Internet, so discovery takes its URLs and its name server as parameters and these answer on
127.0.0.1.  Both are real servers (``http.server``, and dnspython's wire format over a UDP
socket), started by a fixture and stopped by it.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest


@dataclass
class Page:
    """One answer of the web server: status, headers and a body (bytes, or chunks written one by one)."""

    body: bytes | Callable[[], Iterator[bytes]] = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/xml"})


class WebServer:
    """Serves ``pages[path]`` (path without the query); 404 for anything else.  ``requests`` records what was asked."""

    def __init__(self, certificate: tuple[Path, Path] | None = None) -> None:
        """``certificate``: (cert, key) PEM files to serve HTTPS with, else plain HTTP."""
        self.pages: dict[str, Page] = {}
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                page = owner.pages.get(self.path.split("?", 1)[0])
                if page is None:
                    self.send_error(404)
                    return
                self.send_response(page.status)
                for name, value in page.headers.items():
                    self.send_header(name, value)
                if isinstance(page.body, bytes) and "Content-Length" not in page.headers:
                    self.send_header("Content-Length", str(len(page.body)))
                self.end_headers()
                chunks = [page.body] if isinstance(page.body, bytes) else page.body()
                try:
                    for chunk in chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except OSError:
                    pass  # the client gave up, as it should on a hostile answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.scheme = "http"
        if certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*certificate)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class DnsServer:
    """Answers UDP queries from ``records[(name, type)]`` (names lower-case, with the final dot) in zone-file text.

    A name with no records of any type is NXDOMAIN; a name with records of other types only
    answers NOERROR with an empty answer, as a real server does.
    """

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.queries: list[tuple[str, str]] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.port = self._socket.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add(self, name: str, rdtype: str, *rdata: str) -> None:
        self.records.setdefault((name.lower().rstrip(".") + ".", rdtype), []).extend(rdata)

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                wire, client = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(wire)
            except Exception:
                continue  # not a DNS query: a real server drops it too
            self._socket.sendto(self._answer(query).to_wire(), client)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if not any(known == name for known, _type in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        rdata = self.records.get((name, rdtype))
        if rdata:
            response.answer.append(dns.rrset.from_text_list(name, 300, dns.rdataclass.IN, rdtype, rdata))
        return response

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._socket.close()


@pytest.fixture
def web_server() -> Iterator[WebServer]:
    server = WebServer()
    yield server
    server.stop()


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer()
    yield server
    server.stop()


def autoconfig_xml(*servers: tuple[str, str, int, str], username: str = "%EMAILADDRESS%") -> bytes:
    """A Thunderbird-format file with incoming servers ``(type, hostname, port, socketType)``."""
    incoming = "".join(
        f"""
    <incomingServer type="{kind}">
      <hostname>{host}</hostname>
      <port>{port}</port>
      <socketType>{socket_type}</socketType>
      <username>{username}</username>
      <authentication>password-cleartext</authentication>
    </incomingServer>"""
        for kind, host, port, socket_type in servers
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.test">
    <domain>example.test</domain>
    <displayName>Example</displayName>{incoming}
  </emailProvider>
</clientConfig>
""".encode()
