"""Provider presets: what we know about the big mail providers, as plain data.

``provider = "gmail"`` on an account fills ``host``, ``port``, ``security``, ``auth`` and
``oauth2_provider`` from here (explicit keys win), and ``archiver account add`` recognises a
preset by the address's domain (``gmail.com``) or by the domain's MX hosts (a Google Workspace
or Microsoft 365 hosted domain).

Only facts published by the providers (and mirrored in Thunderbird's ISP database) are here.
None of these servers is reachable from the test suite: every preset was exercised only through
the local setup (a Dovecot standing in for the provider), which docs/providers.md says too.

This module imports nothing heavy (no HTTP, no DNS), because the config reader imports it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from archiver.discovery.model import Server, substitute
from archiver.errors import ConfigError

EMAIL_ADDRESS = "%EMAILADDRESS%"
LOCAL_PART = "%EMAILLOCALPART%"


@dataclass(frozen=True)
class Endpoint:
    """A server of a preset: host, port and connection security (``"tls"`` or ``"starttls"``)."""

    host: str
    port: int
    security: str = "tls"


@dataclass(frozen=True)
class Quirks:
    """Behaviour of a provider that the backup and the user must know about.

    * ``gmail_labels``: folders are labels (X-GM-EXT-1); ``[Gmail]/All Mail`` holds every message
      once and is the source of truth, the label folders are views of it.
    * ``daily_download_quota``: the provider caps how much a mailbox may download per day
      (Google publishes 2,500 MB a day over IMAP); a big first backup takes several days.
    * ``throttling``: the server answers ``NO`` with a throttling reason when a client is too
      busy (Microsoft); back off and retry rather than fail.
    * ``app_password``: the account password is refused; an app password made in the provider's
      security settings is needed (or OAuth2 where the preset uses it).
    * ``enable_access``: IMAP/POP3 access is off until switched on in the webmail's settings.
    """

    gmail_labels: bool = False
    daily_download_quota: bool = False
    throttling: bool = False
    app_password: bool = False
    enable_access: bool = False


@dataclass(frozen=True)
class Preset:
    """One provider.  ``domains`` are address domains it serves; ``mx_suffixes`` recognise a hosted domain."""

    name: str
    label: str
    imap: Endpoint | None
    pop3: Endpoint | None
    smtp: Endpoint | None
    auth: str = "password"  # "password" (an app password where quirks.app_password) or "oauth2"
    oauth2_provider: str | None = None  # an entry of the OAuth2 provider registry: "google", "microsoft"
    username: str = EMAIL_ADDRESS
    domains: tuple[str, ...] = ()
    mx_suffixes: tuple[str, ...] = ()
    quirks: Quirks = field(default_factory=Quirks)

    def advice(self) -> list[str]:
        """What the user must know before adding an account of this provider, one sentence per quirk."""
        quirks = self.quirks
        said = [
            (quirks.app_password, f"{self.label} refuses the account's own password here: use an app password "
                                  "made in its security settings."),
            (quirks.enable_access, f"Switch IMAP/POP3 access on in {self.label}'s webmail settings first."),
            (quirks.gmail_labels, "Folders are labels: [Gmail]/All Mail holds every message once, and the archive "
                                  "stores each message once with all its labels."),
            (quirks.daily_download_quota, "Google caps downloads per day (2,500 MB over IMAP): a big first backup "
                                          "takes several runs, each keeping what it fetched."),
            (quirks.throttling, "Microsoft slows down busy clients: a first backup may take longer than the "
                                "mailbox's size suggests."),
        ]  # fmt: skip
        return [line for applies, line in said if applies]

    def endpoint(self, protocol: str) -> Endpoint | None:
        return {"imap": self.imap, "pop3": self.pop3}.get(protocol)

    def server(self, protocol: str, email: str) -> Server | None:
        """The preset's way in for ``protocol`` and this address, or None when the provider offers no such server."""
        endpoint = self.endpoint(protocol)
        if endpoint is None:
            return None
        return Server(
            protocol,
            endpoint.host,
            endpoint.port,
            endpoint.security,
            substitute(self.username, email),
            self.auth,
            self.oauth2_provider,
        )


_MICROSOFT_CONSUMER_DOMAINS = (
    "outlook.com", "hotmail.com", "live.com", "msn.com", "windowslive.com",
    "outlook.fr", "outlook.de", "outlook.es", "outlook.it", "outlook.be", "outlook.at",
    "hotmail.fr", "hotmail.de", "hotmail.es", "hotmail.it", "hotmail.be", "hotmail.co.uk", "hotmail.ca",
    "live.fr", "live.de", "live.it", "live.be", "live.nl", "live.co.uk", "live.ca",
)  # fmt: skip

_YAHOO_DOMAINS = (
    "yahoo.com", "yahoo.fr", "yahoo.de", "yahoo.it", "yahoo.es", "yahoo.co.uk", "yahoo.com.au", "yahoo.com.br",
    "ymail.com", "rocketmail.com", "myyahoo.com",
)  # fmt: skip

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "gmail",
            "Gmail / Google Workspace",
            imap=Endpoint("imap.gmail.com", 993),
            pop3=Endpoint("pop.gmail.com", 995),
            smtp=Endpoint("smtp.gmail.com", 465),
            auth="oauth2",
            oauth2_provider="google",
            domains=("gmail.com", "googlemail.com"),
            mx_suffixes=("google.com", "googlemail.com"),
            quirks=Quirks(gmail_labels=True, daily_download_quota=True),
        ),
        Preset(
            "microsoft365",
            "Microsoft 365 / Exchange Online",
            imap=Endpoint("outlook.office365.com", 993),
            pop3=Endpoint("outlook.office365.com", 995),
            smtp=Endpoint("smtp.office365.com", 587, "starttls"),
            auth="oauth2",
            oauth2_provider="microsoft",
            domains=("onmicrosoft.com",),
            mx_suffixes=("mail.protection.outlook.com",),
            quirks=Quirks(throttling=True),
        ),
        Preset(
            "outlook.com",
            "Outlook.com / Hotmail (Microsoft consumer accounts)",
            imap=Endpoint("outlook.office365.com", 993),
            pop3=Endpoint("outlook.office365.com", 995),
            smtp=Endpoint("smtp-mail.outlook.com", 587, "starttls"),
            auth="oauth2",
            oauth2_provider="microsoft",
            domains=_MICROSOFT_CONSUMER_DOMAINS,
            mx_suffixes=("olc.protection.outlook.com",),
            quirks=Quirks(throttling=True),
        ),
        Preset(
            "yahoo",
            "Yahoo Mail",
            imap=Endpoint("imap.mail.yahoo.com", 993),
            pop3=Endpoint("pop.mail.yahoo.com", 995),
            smtp=Endpoint("smtp.mail.yahoo.com", 465),
            domains=_YAHOO_DOMAINS,
            quirks=Quirks(app_password=True),
        ),
        Preset(
            "aol",
            "AOL Mail",
            imap=Endpoint("imap.aol.com", 993),
            pop3=Endpoint("pop.aol.com", 995),
            smtp=Endpoint("smtp.aol.com", 465),
            domains=("aol.com", "aim.com", "aol.fr", "aol.de", "aol.co.uk"),
            quirks=Quirks(app_password=True),
        ),
        Preset(
            "icloud",
            "iCloud Mail",
            imap=Endpoint("imap.mail.me.com", 993),
            pop3=None,  # Apple offers no POP3
            smtp=Endpoint("smtp.mail.me.com", 587, "starttls"),
            username=LOCAL_PART,  # Apple: "the name part of your iCloud Mail address"
            domains=("icloud.com", "me.com", "mac.com"),
            quirks=Quirks(app_password=True),
        ),
        Preset(
            "fastmail",
            "Fastmail",
            imap=Endpoint("imap.fastmail.com", 993),
            pop3=Endpoint("pop.fastmail.com", 995),
            smtp=Endpoint("smtp.fastmail.com", 465),
            domains=("fastmail.com", "fastmail.fm"),
            mx_suffixes=("messagingengine.com",),
            quirks=Quirks(app_password=True),
        ),
        Preset(
            "gmx",
            "GMX (gmx.net, gmx.de, gmx.at, gmx.ch)",
            imap=Endpoint("imap.gmx.net", 993),
            pop3=Endpoint("pop.gmx.net", 995),
            smtp=Endpoint("mail.gmx.net", 465),
            domains=("gmx.net", "gmx.de", "gmx.at", "gmx.ch", "gmx.eu"),
            quirks=Quirks(enable_access=True),
        ),
        Preset(
            "gmx.com",
            "GMX international (gmx.com, gmx.fr, gmx.co.uk…)",
            imap=Endpoint("imap.gmx.com", 993),
            pop3=Endpoint("pop.gmx.com", 995),
            smtp=Endpoint("mail.gmx.com", 465),
            domains=("gmx.com", "gmx.us", "gmx.co.uk", "gmx.fr", "gmx.es", "gmx.it"),
        ),
        Preset(
            "web.de",
            "WEB.DE",
            imap=Endpoint("imap.web.de", 993),
            pop3=Endpoint("pop3.web.de", 995),
            smtp=Endpoint("smtp.web.de", 465),
            username=LOCAL_PART,
            domains=("web.de",),
            quirks=Quirks(enable_access=True),
        ),
        Preset(
            "orange",
            "Orange (orange.fr, wanadoo.fr)",
            imap=Endpoint("imap.orange.fr", 993),
            pop3=Endpoint("pop.orange.fr", 995),
            smtp=Endpoint("smtp.orange.fr", 465),
            domains=("orange.fr", "wanadoo.fr"),
        ),
        Preset(
            "free",
            "Free (free.fr)",
            imap=Endpoint("imap.free.fr", 993),
            pop3=Endpoint("pop.free.fr", 995),
            smtp=Endpoint("smtp.free.fr", 465),
            username=LOCAL_PART,
            domains=("free.fr",),
        ),
        Preset(
            "ovh",
            "OVHcloud MX Plan (your own domain)",
            imap=Endpoint("ssl0.ovh.net", 993),
            pop3=Endpoint("ssl0.ovh.net", 995),
            smtp=Endpoint("ssl0.ovh.net", 465),
            # No MX recognition: OVH's MX hosts also front its Exchange and Email Pro offers,
            # whose IMAP servers differ; name the preset in the config or with --provider.
        ),
        Preset(
            "mailbox.org",
            "mailbox.org",
            imap=Endpoint("imap.mailbox.org", 993),
            pop3=None,
            smtp=Endpoint("smtp.mailbox.org", 465),
            domains=("mailbox.org",),
        ),
        Preset(
            "posteo",
            "Posteo",
            imap=Endpoint("posteo.de", 993),
            pop3=Endpoint("posteo.de", 995),
            smtp=Endpoint("posteo.de", 465),
            domains=("posteo.de", "posteo.net", "posteo.eu", "posteo.at", "posteo.ch", "posteo.org", "posteo.com"),
        ),
        Preset(
            "zoho",
            "Zoho Mail (zoho.com accounts)",
            imap=Endpoint("imap.zoho.com", 993),
            pop3=Endpoint("pop.zoho.com", 995),
            smtp=Endpoint("smtp.zoho.com", 465),
            domains=("zoho.com", "zohomail.com"),
            quirks=Quirks(enable_access=True),
        ),
    )
}


def preset_named(name: str, where: str = "provider") -> Preset:
    """The preset called ``name``; else a :class:`ConfigError` line listing them, with a did-you-mean."""
    preset = PRESETS.get(name.strip().lower())
    if preset is None:
        raise ConfigError(f"{where}: {unknown_provider(name)}")
    return preset


def unknown_provider(name: str) -> str:
    """Why ``name`` is no preset, for an error line: the known names, and the closest one."""
    known = ", ".join(f'"{n}"' for n in PRESETS)
    close = difflib.get_close_matches(name.strip().lower(), PRESETS, n=1, cutoff=0.6)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    return f"unknown provider {name!r}{hint} (known providers: {known})"


def preset_for_domain(domain: str) -> Preset | None:
    """The preset serving addresses at ``domain`` or a parent of it (``contoso.onmicrosoft.com``), if any."""
    labels = domain.lower().rstrip(".").split(".")
    for start in range(len(labels) - 1):
        preset = _BY_DOMAIN.get(".".join(labels[start:]))
        if preset is not None:
            return preset
    return None


def preset_for_host(host: str, protocol: str) -> Preset | None:
    """The preset whose ``protocol`` server is ``host`` (an autoconfig file pointing at Microsoft's), if any."""
    name = host.lower().rstrip(".")
    for preset in PRESETS.values():
        endpoint = preset.endpoint(protocol)
        if endpoint is not None and endpoint.host == name:
            return preset
    return None


def preset_for_mx(hosts: list[str]) -> Preset | None:
    """The preset whose mail exchangers these are (``aspmx.l.google.com`` → gmail), if any.

    Matching is on whole DNS labels, so ``mx.notgoogle.com`` is not Google's.
    """
    for host in hosts:
        name = host.lower().rstrip(".")
        for preset in PRESETS.values():
            if any(name == suffix or name.endswith("." + suffix) for suffix in preset.mx_suffixes):
                return preset
    return None


_BY_DOMAIN = {domain: preset for preset in PRESETS.values() for domain in preset.domains}
