"""The plain data discovery produces: servers found and the outcome of a discovery."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from archiver.errors import DiscoveryError

#: Ranking of connection security, best first: implicit TLS protects the greeting and the
#: capability list too, STARTTLS only from the upgrade on; "none" sends the password readable.
SECURITY_RANK = {"tls": 0, "starttls": 1, "none": 2}
PROTOCOL_NAMES = {"imap": "IMAP", "pop3": "POP3"}
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_LOCAL_PART = re.compile(r"[^\s\x00-\x1f\x7f\"<>()\[\]\\,;:]{1,64}")


@dataclass(frozen=True)
class Server:
    """One way into a mailbox, as a preset, an autoconfig file or an SRV record describes it.

    ``username`` is already substituted (``%EMAILLOCALPART%`` and friends); ``auth`` is
    ``"password"`` or ``"oauth2"``; ``oauth2_provider`` names an entry of the OAuth2 provider
    registry (``"google"``, ``"microsoft"``) when the server is a known provider's.
    """

    protocol: str  # "imap" | "pop3"
    host: str
    port: int
    security: str  # "tls" | "starttls" | "none"
    username: str
    auth: str = "password"
    oauth2_provider: str | None = None

    def describe(self) -> str:
        shown = {"tls": "TLS", "starttls": "STARTTLS", "none": "no TLS"}[self.security]
        return f"{PROTOCOL_NAMES[self.protocol]} {self.host}:{self.port} ({shown})"


@dataclass(frozen=True)
class Discovery:
    """What :func:`archiver.discovery.discover.discover` settled on for one address.

    ``origin`` says where the settings came from, for the user (``preset "gmail"``,
    ``autoconfig https://…``, ``SRV _imaps._tcp.example.org``); ``preset`` is the preset's name
    when one matched, so the written config can say ``provider = "…"`` instead of repeating it;
    ``notes`` are the earlier steps that gave nothing usable, with why.
    """

    email: str
    server: Server
    origin: str
    preset: str | None = None
    notes: tuple[str, ...] = ()


def split_address(email: str) -> tuple[str, str]:
    """``(local part, lower-cased domain)``; the caller has checked the address (:func:`check_address`)."""
    local, _, domain = email.rpartition("@")
    return local, domain.lower().rstrip(".")


def substitute(template: str, email: str) -> str:
    """Fill the placeholders of the Thunderbird format (``%EMAILADDRESS%``, ``%EMAILLOCALPART%``, ``%EMAILDOMAIN%``)."""
    local, domain = split_address(email)
    return template.replace("%EMAILADDRESS%", email).replace("%EMAILLOCALPART%", local).replace("%EMAILDOMAIN%", domain)


def check_address(email: str) -> str:
    """The address, stripped, if it looks like ``local@domain``; a :class:`DiscoveryError` line otherwise.

    Deliberately narrower than RFC 5322 (no quoted local parts, no comments): the address ends
    up in URLs, DNS names and a TOML file, and a mailbox address a person types never needs more.
    """
    address = email.strip()
    local, at, domain = address.rpartition("@")
    if not at or not _LOCAL_PART.fullmatch(local) or not is_hostname(domain) or "." not in domain.strip("."):
        raise DiscoveryError(f"{_shown(address)} is not an e-mail address (expected local-part@domain.tld)")
    return address


def is_hostname(name: str) -> bool:
    """True for a DNS host name (IDNA allowed) or an IP address literal; what a server ``host`` may be."""
    if not name or len(name) > 253 or name != name.strip():
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    try:
        ascii_name = name.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        return False
    return bool(ascii_name) and all(_LABEL.fullmatch(label) for label in ascii_name.split("."))


def _shown(text: str) -> str:
    """A value from outside, quoted and cut short so an error line stays one readable line."""
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:76] + "...'"
