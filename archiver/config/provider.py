"""``provider = "NAME"`` on an account: a preset (archiver.discovery.presets) fills what the table leaves out.

Explicit keys always win.  The preset gives ``protocol`` (IMAP), ``host`` and ``security`` for the
account's protocol, and ``auth`` and ``oauth2_provider`` (read by archiver.config.oauth); the port
follows the preset only while the security is the preset's, so ``provider = "gmx"`` with
``security = "starttls"`` connects to port 143, not to 993 with STARTTLS.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from archiver.config.reader import Table
    from archiver.discovery.presets import Endpoint, Preset


def read_provider(table: Table) -> Preset | None:
    """The account's preset, or None without ``provider``; an unknown name is one line listing the known ones."""
    name = table.string("provider")
    if name is None:
        return None
    from archiver.discovery.presets import PRESETS, unknown_provider  # the providers' table: only when one is named

    preset = PRESETS.get(name.strip().lower())
    if preset is None:
        raise table.fail("provider", unknown_provider(name))
    return preset


def provider_endpoint(table: Table, preset: Preset | None, protocol: str) -> Endpoint | None:
    """The preset's server for ``protocol``; a provider without one is an error unless the table names a host."""
    if preset is None:
        return None
    if protocol == "local":
        raise table.fail("provider", 'not for protocol "local" (a local account has no server)')
    endpoint = preset.endpoint(protocol)
    if endpoint is None and not table.has("host"):
        offered = " or ".join(f'"{p}"' for p in ("imap", "pop3") if preset.endpoint(p))
        raise table.fail("provider", f"{preset.label} offers no {protocol.upper()} server; use protocol = {offered}")
    return endpoint


def provider_port(endpoint: Endpoint | None, security: str, fallback: int) -> int:
    """The preset's port while the account keeps the preset's security, else ``fallback`` (that security's default)."""
    return endpoint.port if endpoint is not None and endpoint.security == security else fallback


def check_preset_auth(table: Table, preset: Preset | None, password_keys: Iterable[str]) -> None:
    """A password on an account whose preset signs in with OAuth2, and no ``auth``: most likely an app password.

    Said at once, with the fix, rather than as the OAuth2 reader's "client id missing".
    """
    if preset is None or preset.auth != "oauth2" or table.has("auth"):
        return
    for key in password_keys:
        if table.has(key):
            raise table.fail(
                key, f'provider "{preset.name}" signs in with OAuth2; add auth = "password" to use an app password'
            )
