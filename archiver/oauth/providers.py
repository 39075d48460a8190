"""The OAuth2 providers archiver knows: where to send the user, where to get tokens, which scopes.

Why a registry: the endpoints and scopes for Gmail and Microsoft 365 are fixed
facts that users get wrong (the Outlook *resource* scopes, not Graph's; Google's
``access_type=offline`` without which no refresh token comes back), so a config
names a provider and this module fills the rest.  ``custom`` takes every
endpoint from the config; that is also how the tests point at their loopback
server.  Provider presets (``provider = "gmail"``) refer to these names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from archiver.errors import ConfigError

GOOGLE_MAIL_SCOPE = "https://mail.google.com/"
MICROSOFT_IMAP_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All"
MICROSOFT_POP_SCOPE = "https://outlook.office.com/POP.AccessAsUser.All"
MICROSOFT_SMTP_SCOPE = "https://outlook.office.com/SMTP.Send"
MICROSOFT_TENANTS = ("common", "consumers", "organizations")
FLOWS = ("device", "loopback")
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,253}")  # a GUID or a verified domain name


@dataclass(frozen=True)
class Provider:
    """A provider's fixed facts; URLs may hold ``{tenant}``."""

    name: str
    authorize_url: str | None
    token_url: str | None
    device_url: str | None
    needs_secret: bool
    default_flow: str
    authorize_params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Endpoints:
    """Where one account's flows and refreshes go, and with which scopes: plain data, resolved from config."""

    provider: str
    authorize_url: str | None
    token_url: str
    device_url: str | None
    scopes: tuple[str, ...]
    default_flow: str
    authorize_params: tuple[tuple[str, str], ...] = ()

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)


PROVIDERS: dict[str, Provider] = {
    "google": Provider(
        "google",
        "https://accounts.google.com/o/oauth2/v2/auth",
        "https://oauth2.googleapis.com/token",
        None,  # Google's device flow refuses the Gmail scope
        needs_secret=True,
        default_flow="loopback",
        # without these Google returns no refresh token on a second consent
        authorize_params={"access_type": "offline", "prompt": "consent"},
    ),
    "microsoft": Provider(
        "microsoft",
        "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
        "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode",
        needs_secret=False,
        default_flow="device",
    ),
    "custom": Provider("custom", None, None, None, needs_secret=False, default_flow="device"),
}


def provider(name: str) -> Provider:
    """The provider called ``name``, or one line naming the known ones."""
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ConfigError(f"unknown OAuth2 provider {name!r}; expected one of {', '.join(PROVIDERS)}") from None


def default_scopes(name: str, protocol: str, *, smtp: bool = False) -> tuple[str, ...]:
    """The scopes an account of ``protocol`` needs at provider ``name`` (``smtp``: it also sends alerts)."""
    if name == "google":
        return (GOOGLE_MAIL_SCOPE,)
    if name == "microsoft":
        mail = MICROSOFT_POP_SCOPE if protocol == "pop3" else MICROSOFT_IMAP_SCOPE
        return (mail, *((MICROSOFT_SMTP_SCOPE,) if smtp else ()), "offline_access")
    return ()


def resolve_endpoints(
    name: str,
    *,
    protocol: str = "imap",
    tenant: str | None = None,
    scopes: tuple[str, ...] | None = None,
    authorize_url: str | None = None,
    token_url: str | None = None,
    device_url: str | None = None,
    smtp: bool = False,
) -> Endpoints:
    """The endpoints of one account; explicit URLs override the provider's (and are required for ``custom``).

    Raises :class:`ConfigError` (one line) for an unknown provider, a bad
    tenant, or a ``custom`` provider without a token URL or any way to
    authorise (an authorize URL or a device URL).
    """
    known = provider(name)
    if tenant is not None and name != "microsoft":
        raise ConfigError(f"oauth2_tenant is only for provider 'microsoft', not {name!r}")
    tenant = tenant or "common"
    if tenant not in MICROSOFT_TENANTS and not _TENANT.fullmatch(tenant):
        raise ConfigError(
            f"oauth2_tenant {tenant!r} is not a tenant: expected {', '.join(MICROSOFT_TENANTS)}, "
            "a directory id or a domain"
        )

    def pick(given: str | None, preset: str | None) -> str | None:
        return given or (preset.format(tenant=tenant) if preset else None)

    token = pick(token_url, known.token_url)
    authorize = pick(authorize_url, known.authorize_url)
    device = pick(device_url, known.device_url)
    if token is None:
        raise ConfigError(f"OAuth2 provider {name!r} needs oauth2_token_url")
    if authorize is None and device is None:
        raise ConfigError(f"OAuth2 provider {name!r} needs oauth2_authorize_url or oauth2_device_url")
    flow = known.default_flow if name != "custom" else ("device" if device else "loopback")
    return Endpoints(
        provider=name,
        authorize_url=authorize,
        token_url=token,
        device_url=device,
        scopes=scopes if scopes is not None else default_scopes(name, protocol, smtp=smtp),
        default_flow=flow,
        authorize_params=tuple(known.authorize_params.items()),
    )
