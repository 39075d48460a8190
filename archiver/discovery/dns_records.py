"""DNS for discovery, with dnspython: RFC 6186 SRV records and the MX hosts that reveal a hosted domain.

A resolver can be pointed at a given name server and port (``--dns-server``; the tests run one
on loopback).  DNS failing or saying nothing is never an error here, only "nothing found" with
a reason, because discovery then goes on to the next way; an answer we cannot use is skipped.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import dns.exception
import dns.rdatatype
import dns.resolver

from archiver.discovery.model import Server, is_hostname
from archiver.errors import DiscoveryError

#: Seconds for one query to one server, and for a whole lookup.
QUERY_TIMEOUT = 3.0
LIFETIME = 6.0
_TIMED_OUT = "DNS did not answer"

#: RFC 6186 services, best first: implicit TLS (RFC 8314) before STARTTLS.
SRV_SERVICES = {
    "imap": (("_imaps._tcp", "tls"), ("_imap._tcp", "starttls")),
    "pop3": (("_pop3s._tcp", "tls"), ("_pop3._tcp", "starttls")),
}


@dataclass(frozen=True)
class Lookup:
    """What a lookup found, and in words why not when it found nothing (for the user's notes)."""

    servers: tuple[Server, ...] = ()
    hosts: tuple[str, ...] = ()
    note: str = ""
    timed_out: bool = False  # the name server did not answer: asking it more only costs more seconds


def make_resolver(nameserver: str | None = None) -> dns.resolver.Resolver:
    """The system's resolver, or one asking only ``nameserver`` (``IP`` or ``IP:PORT``, ``[IPv6]:PORT``)."""
    if nameserver is None:
        try:
            resolver = dns.resolver.Resolver()
        except dns.exception.DNSException as exc:
            raise DiscoveryError(f"cannot use the system's DNS resolver ({exc}); pass --dns-server IP") from None
    else:
        address, port = _address_and_port(nameserver)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [address]
        resolver.port = port
    resolver.timeout = QUERY_TIMEOUT
    resolver.lifetime = LIFETIME
    return resolver


def _address_and_port(text: str) -> tuple[str, int]:
    host, port = text.strip(), "53"
    if host.startswith("["):
        host, bracket, rest = host[1:].partition("]")
        port = rest.removeprefix(":") or "53" if bracket else ""
    elif host.count(":") == 1:
        host, port = host.split(":")
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise DiscoveryError(f"--dns-server: expected an IP address (IP or IP:PORT), got {text[:60]!r}") from None
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        raise DiscoveryError(f"--dns-server: expected a port from 1 to 65535, got {port[:20]!r}")
    return address, int(port)


def srv_servers(domain: str, protocol: str, username: str, resolver: dns.resolver.Resolver) -> Lookup:
    """The servers RFC 6186 SRV records name for ``protocol``, best first.

    Per service, records sort by priority (lowest first) and then weight (highest first): a
    config is written once, so the RFC 2782 weighted draw becomes its most likely outcome.  A
    target of ``.`` says the service is not offered (RFC 6186 section 3.4), so it yields nothing.
    """
    servers: list[Server] = []
    notes: list[str] = []
    for service, security in SRV_SERVICES[protocol]:
        name = f"{service}.{domain}"
        answer, note = _query(resolver, name, "SRV")
        if note:
            notes.append(note)
        records = sorted(answer, key=lambda r: (r.priority, -r.weight, str(r.target)))
        for record in records:
            target = record.target.to_text(omit_final_dot=True).lower()
            if target in ("", ".") or record.port == 0:
                break  # "." alone: explicitly not offered
            if is_hostname(target):
                servers.append(Server(protocol, target, record.port, security, username))
    if servers:
        return Lookup(servers=tuple(servers))
    return Lookup(note="; ".join(notes) or f"no SRV records for {protocol.upper()} at {domain}")


def mx_hosts(domain: str, resolver: dns.resolver.Resolver) -> Lookup:
    """The domain's mail exchangers, most preferred first."""
    answer, note = _query(resolver, domain, "MX")
    records = sorted(answer, key=lambda r: r.preference)
    hosts = tuple(r.exchange.to_text(omit_final_dot=True).lower() for r in records)
    timed_out = note.startswith(_TIMED_OUT)
    return Lookup(hosts=hosts, note=note or ("" if hosts else f"no MX records at {domain}"), timed_out=timed_out)


def _query(resolver: dns.resolver.Resolver, name: str, rdtype: str) -> tuple[list, str]:
    """The records of one lookup, or ``([], why)``; no DNS error ever escapes."""
    try:
        answer = resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
    except dns.resolver.NXDOMAIN:
        return [], ""
    except dns.exception.Timeout:
        return [], f"{_TIMED_OUT} for {name} {rdtype} within {LIFETIME:.0f} s"
    except dns.exception.DNSException as exc:
        return [], f"DNS lookup of {name} {rdtype} failed ({type(exc).__name__})"
    wanted = dns.rdatatype.from_text(rdtype)
    return [r for r in answer if r.rdtype == wanted], ""
