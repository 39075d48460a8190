"""A domain's own autoconfig file: fetch it (bounded) and read it (the Thunderbird ISP database format).

Mail clients fetch ``https://autoconfig.DOMAIN/mail/config-v1.1.xml?emailaddress=ADDRESS``, then
``https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml``.  What comes back is chosen by
whoever runs that web server, so it is treated as hostile: HTTPS only (a redirect may not leave
HTTPS), at most :data:`MAX_BYTES`, answered within :data:`DEADLINE` seconds, XML parsed by
defusedxml (no entities, no DTDs), every field checked.  Any way it fails is a
:class:`DiscoveryError` line naming the URL; "there is no such file" (no host, 404) is not an
error but ``None``, since most domains publish none.

:func:`parse_autoconfig` is pure and fuzzed; :func:`fetch_autoconfig` is the network edge.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ElementTree
from urllib.parse import urlencode, urljoin, urlsplit

import defusedxml
import defusedxml.ElementTree as SafeElementTree
import requests
import urllib3.exceptions

from archiver import __version__
from archiver.discovery.model import PROTOCOL_NAMES, Server, is_hostname, split_address, substitute
from archiver.errors import DiscoveryError

#: Real autoconfig files are a few KB; the biggest in Thunderbird's database is under 10 KB.
MAX_BYTES = 1024 * 1024
#: Seconds to connect, and between two reads.
TIMEOUT = (5.0, 10.0)
#: Seconds for a whole answer, however it trickles in.
DEADLINE = 20.0
MAX_REDIRECTS = 3
_ABSENT = (404, 410)
_PORT = re.compile(r"[0-9]{1,5}")  # ASCII only: str.isdigit() also takes "²", which int() refuses
_DIGITS = re.compile(r"[0-9]{1,20}")
_SECURITY = {"ssl": "tls", "tls": "tls", "starttls": "starttls", "plain": "none"}
_PASSWORD_METHODS = {"password-cleartext", "password-encrypted", "plain", "secure"}


def autoconfig_urls(email: str) -> list[str]:
    """The two places a domain publishes its autoconfig file, in the order mail clients ask."""
    _local, domain = split_address(email)
    query = urlencode({"emailaddress": email})
    return [
        f"https://autoconfig.{domain}/mail/config-v1.1.xml?{query}",
        f"https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml",
    ]


def fetch_autoconfig(url: str, *, session: requests.Session | None = None) -> bytes | None:
    """The file at ``url``, or None when there is none; a :class:`DiscoveryError` for a hostile or broken answer."""
    owned = session is None
    session = session or requests.Session()
    try:
        return _fetch(session, url)
    finally:
        if owned:
            session.close()


def _fetch(session: requests.Session, url: str) -> bytes | None:
    deadline = time.monotonic() + DEADLINE
    headers = {
        "Accept": "application/xml, text/xml;q=0.9, */*;q=0.1",
        "Accept-Encoding": "identity",  # the size cap then counts what is parsed, no decompression bomb
        "User-Agent": f"archiver/{__version__} (account discovery)",
    }
    for _hop in range(MAX_REDIRECTS + 1):
        try:
            response = session.get(url, headers=headers, timeout=TIMEOUT, allow_redirects=False, stream=True)
        except requests.exceptions.SSLError:
            raise DiscoveryError(f"autoconfig {url}: the server's TLS certificate is not trusted") from None
        except requests.Timeout:
            raise DiscoveryError(f"autoconfig {url}: no answer within {TIMEOUT[1]:.0f} s") from None
        except requests.RequestException:
            return None  # no such host, connection refused: the domain publishes nothing here
        with response:
            if response.is_redirect:
                url = _redirect_target(url, response.headers.get("Location", ""))
                continue
            if response.status_code in _ABSENT:
                return None
            if response.status_code != 200:
                raise DiscoveryError(f"autoconfig {url}: the server answered HTTP {response.status_code}")
            _check_type(url, response.headers.get("Content-Type", ""))
            return _read_body(url, response, deadline)
    raise DiscoveryError(f"autoconfig {url}: more than {MAX_REDIRECTS} redirects")


def _redirect_target(url: str, location: str) -> str:
    if not location:
        raise DiscoveryError(f"autoconfig {url}: a redirect without a Location")
    target = urljoin(url, location)
    if urlsplit(url).scheme == "https" and urlsplit(target).scheme != "https":
        raise DiscoveryError(f"autoconfig {url}: redirects away from HTTPS (to {target[:120]}); refused")
    if urlsplit(target).scheme not in ("http", "https"):
        raise DiscoveryError(f"autoconfig {url}: redirects to a non-HTTP address; refused")
    return target


def _check_type(url: str, content_type: str) -> None:
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in ("text/html", "application/xhtml+xml"):
        raise DiscoveryError(f"autoconfig {url}: the server answered with an HTML page, not an autoconfig file")


def _read_body(url: str, response: requests.Response, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if _DIGITS.fullmatch(declared) and int(declared) > MAX_BYTES:
        raise DiscoveryError(f"autoconfig {url}: the answer is {int(declared)} bytes, more than {MAX_BYTES}")
    body = bytearray()
    try:
        # read1: whatever has arrived (waiting at most the read timeout), so a trickle meets the deadline.
        while chunk := response.raw.read1(64 * 1024):
            body += chunk
            if len(body) > MAX_BYTES:
                raise DiscoveryError(f"autoconfig {url}: the answer is larger than {MAX_BYTES} bytes; refused")
            if time.monotonic() > deadline:
                raise DiscoveryError(f"autoconfig {url}: the answer took longer than {DEADLINE:.0f} s; gave up")
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise DiscoveryError(f"autoconfig {url}: the answer broke off ({type(exc).__name__})") from None
    return bytes(body)


# -- the format -------------------------------------------------------------------------------


def parse_autoconfig(data: bytes, email: str, source: str = "autoconfig") -> list[Server]:
    """Every usable incoming server of an autoconfig file, in the file's order (its order is its preference).

    ``email`` fills the placeholders.  A server we cannot use (an unknown type, NTLM-only, a bad
    port) is skipped; a file with none left, or that is not an autoconfig file at all, is a
    :class:`DiscoveryError` starting with ``source``.
    """
    root = _parse_xml(data, source)
    if _local_name(root.tag) != "clientConfig":
        if _local_name(root.tag).lower() == "html":
            raise DiscoveryError(f"{source}: an HTML page, not an autoconfig file")
        raise DiscoveryError(f"{source}: not an autoconfig file (the root element is <{_local_name(root.tag)[:40]}>)")
    servers: list[Server] = []
    problems: list[str] = []
    for provider in _children(root, "emailProvider"):
        for element in _children(provider, "incomingServer"):
            try:
                server = _server(element, email)
            except _Skip as skip:
                problems.append(str(skip))
                continue
            if server is not None:
                servers.append(server)
    if not servers:
        why = f" ({problems[0]})" if problems else ""
        raise DiscoveryError(f"{source}: names no IMAP or POP3 server we can use{why}")
    return servers


class _Skip(Exception):
    """An incomingServer entry we cannot use, with why."""


def _parse_xml(data: bytes, source: str) -> ElementTree.Element:
    if data.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
        raise DiscoveryError(f"{source}: an HTML page, not an autoconfig file")
    try:
        return SafeElementTree.fromstring(data, forbid_dtd=True)
    except defusedxml.DefusedXmlException:
        raise DiscoveryError(f"{source}: uses a DTD or XML entities (never needed here); refused") from None
    except ElementTree.ParseError as exc:
        line, column = exc.position
        raise DiscoveryError(f"{source}: not well-formed XML (line {line}, column {column})") from None
    except (ValueError, LookupError, RecursionError) as exc:  # bad encoding declaration, nesting bomb
        raise DiscoveryError(f"{source}: not readable XML ({type(exc).__name__})") from None


def _server(element: ElementTree.Element, email: str) -> Server | None:
    protocol = (element.get("type") or "").strip().lower()
    if protocol not in PROTOCOL_NAMES:
        return None  # exchange, ews, graph, jmap…: not a protocol we back up from
    name = PROTOCOL_NAMES[protocol]
    host = substitute(_text(element, "hostname"), email)
    if not is_hostname(host):
        raise _Skip(f"{name} server: hostname {host[:60]!r} is not a host name")
    port_text = _text(element, "port")
    if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        raise _Skip(f"{name} server {host}: port {port_text[:20]!r} is not a port number")
    socket_type = _text(element, "socketType").lower()
    if socket_type not in _SECURITY:
        raise _Skip(f"{name} server {host}: unknown socketType {socket_type[:20]!r}")
    username = substitute(_text(element, "username") or "%EMAILADDRESS%", email)
    if len(username) > 256 or not username.isprintable():
        raise _Skip(f"{name} server {host}: the username is not printable text")
    methods = [(child.text or "").strip().lower() for child in _children(element, "authentication")]
    if not methods or any(m in _PASSWORD_METHODS for m in methods):
        auth = "password"
    elif "oauth2" in methods:
        auth = "oauth2"
    else:
        raise _Skip(f"{name} server {host}: only {', '.join(m[:20] for m in methods)} sign-in, which we do not support")
    return Server(protocol, host.rstrip(".").lower(), int(port_text), _SECURITY[socket_type], username, auth)


def _children(element: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [child for child in element if isinstance(child.tag, str) and _local_name(child.tag) == name]


def _text(element: ElementTree.Element, name: str) -> str:
    found = _children(element, name)
    return (found[0].text or "").strip() if found else ""


def _local_name(tag: object) -> str:
    """A tag without its ``{namespace}``; comments and processing instructions have no name."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""
