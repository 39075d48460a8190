"""Find the server settings for an e-mail address, in the order mail clients use.

1. a preset for the address's domain (``gmail.com`` → gmail);
2. a preset for the domain's MX hosts (a Google Workspace or Microsoft 365 hosted domain);
3. the domain's autoconfig file (:mod:`.autoconfig`), in its two places;
4. RFC 6186 SRV records (:mod:`.dns_records`).

The first step that yields a usable server wins.  Among a step's servers implicit TLS comes
before STARTTLS; a server without TLS is refused unless ``allow_plaintext`` (the password would
cross the network readable), and a step offering only such servers is passed over with a note,
so an SRV record with TLS still beats an autoconfig file without.  When nothing is usable the
:class:`DiscoveryError` line says what each step gave.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from archiver.discovery.autoconfig import autoconfig_urls, fetch_autoconfig, parse_autoconfig
from archiver.discovery.dns_records import Lookup, make_resolver, mx_hosts, srv_servers
from archiver.discovery.model import PROTOCOL_NAMES, SECURITY_RANK, Discovery, Server, check_address, split_address
from archiver.discovery.presets import Preset, preset_for_domain, preset_for_host, preset_for_mx, preset_named
from archiver.errors import DiscoveryError


def discover(
    email: str,
    protocol: str = "imap",
    *,
    allow_plaintext: bool = False,
    provider: str | None = None,
    autoconfig: Sequence[str] | None = None,
    dns_server: str | None = None,
    fetch: Callable[[str], bytes | None] = fetch_autoconfig,
) -> Discovery:
    """Settings for ``email`` over ``protocol`` (``"imap"`` or ``"pop3"``).

    ``provider`` skips the search and uses that preset.  ``autoconfig`` replaces the two
    standard autoconfig URLs (to try a file before publishing it, and for tests);
    ``dns_server`` (``IP[:PORT]``) replaces the system's resolver.
    """
    email = check_address(email)
    if protocol not in PROTOCOL_NAMES:
        raise DiscoveryError(f"unknown protocol {protocol!r} (expected imap or pop3)")
    if provider is not None:
        preset = preset_named(provider, "--provider")
        return _from_preset(preset, email, protocol, f'preset "{preset.name}" (--provider)')
    _local, domain = split_address(email)
    preset = preset_for_domain(domain)
    if preset is not None:
        return _from_preset(preset, email, protocol, f'preset "{preset.name}" (domain {domain})')

    notes: list[str] = []
    resolver = make_resolver(dns_server)
    mx = mx_hosts(domain, resolver)
    preset = preset_for_mx(list(mx.hosts))
    if preset is not None:
        origin = f'preset "{preset.name}" (MX {mx.hosts[0]})'
        return _from_preset(preset, email, protocol, origin)
    notes.append(mx.note or f"MX {mx.hosts[0]}: not a known provider")

    for url in autoconfig if autoconfig is not None else autoconfig_urls(email):
        try:
            data = fetch(url)
            if data is None:
                notes.append(f"autoconfig {url}: none published")
                continue
            servers = parse_autoconfig(data, email, f"autoconfig {url}")
        except DiscoveryError as exc:
            notes.append(str(exc))
            continue
        found = _best(servers, protocol, allow_plaintext, f"autoconfig {url}", notes)
        if found is not None:
            return Discovery(email, found, f"autoconfig {url}", None, tuple(notes))

    if mx.timed_out:  # the same silent name server would cost LIFETIME per SRV name again
        srv = Lookup(note="SRV records not looked up (DNS did not answer)")
    else:
        srv = srv_servers(domain, protocol, email, resolver)
    if not srv.servers:
        notes.append(srv.note)
    found = _best(list(srv.servers), protocol, allow_plaintext, f"SRV records of {domain}", notes)
    if found is not None:
        return Discovery(email, found, f"SRV records of {domain}", None, tuple(notes))
    raise DiscoveryError(
        f"found no usable {PROTOCOL_NAMES[protocol]} settings for {email}: {'; '.join(notes)}. "
        "Name the provider (--provider) or write the account by hand (docs/providers.md)"
    )


def _from_preset(preset: Preset, email: str, protocol: str, origin: str) -> Discovery:
    server = preset.server(protocol, email)
    if server is None:
        offered = " or ".join(p for p in PROTOCOL_NAMES if preset.endpoint(p)) or "nothing we can use"
        raise DiscoveryError(f"{preset.label} offers no {PROTOCOL_NAMES[protocol]} server; use --protocol {offered}")
    return Discovery(email, server, origin, preset.name)


def _best(servers: list[Server], protocol: str, allow_plaintext: bool, origin: str, notes: list[str]) -> Server | None:
    """The most secure server for ``protocol``, stable in the source's own order; plain text only if allowed."""
    candidates = sorted((s for s in servers if s.protocol == protocol), key=lambda s: SECURITY_RANK[s.security])
    if not candidates:
        if servers:
            notes.append(f"{origin}: offers no {PROTOCOL_NAMES[protocol]} server")
        return None
    best = candidates[0]
    if best.auth == "oauth2" and best.oauth2_provider is None:
        known = preset_for_host(best.host, protocol)  # the token comes from whoever runs that server
        if known is not None and known.oauth2_provider:
            best = replace(best, oauth2_provider=known.oauth2_provider)
    if best.security == "none" and not allow_plaintext:
        notes.append(
            f"{origin}: offers only {best.describe()}, without TLS the password would cross the network "
            "readable; refused (pass --allow-plaintext to accept)"
        )
        return None
    return best
