"""The OAuth2 keys of an ``[[accounts]]`` table, and the token source they describe.

``auth = "oauth2"`` replaces the password keys with either a registered
application (``oauth2_provider``, ``oauth2_client_id`` and, where the provider
requires it, a client secret given like a password) whose grant ``archiver
auth`` stores in a token file, or a ``token_command`` that prints an access
token.  Mixing the two worlds (a password with ``auth = "oauth2"``, an
``oauth2_*`` key with ``auth = "password"``) is an error: either one would be
silently ignored, which is how a backup ends up logging in with the wrong thing.

Like passwords, nothing is fetched at load time: :meth:`OAuthConfig.token_source`
builds the source a login asks for its token.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from archiver.errors import ConfigError
from archiver.oauth.providers import PROVIDERS, Endpoints, provider, resolve_endpoints

if TYPE_CHECKING:
    from archiver.config.reader import Table
    from archiver.config.secrets import PasswordSource
    from archiver.oauth.client import OAuthClient
    from archiver.oauth.tokens import TokenSource

AUTH_MODES = ("password", "oauth2")
CLIENT_SECRET_KEYS = {
    "oauth2_client_secret": "value",
    "oauth2_client_secret_file": "file",
    "oauth2_client_secret_command": "command",
    "oauth2_client_secret_env": "env",
}
_APP_KEYS = (
    "oauth2_provider", "oauth2_client_id", *CLIENT_SECRET_KEYS, "oauth2_tenant", "oauth2_scopes",
    "oauth2_authorize_url", "oauth2_token_url", "oauth2_device_url", "oauth2_token_file",
)  # fmt: skip
#: The keys this module reads, for the account table's list of valid keys.
#: ``oauth2_mechanism``: which SASL mechanism presents the token ("auto": OAUTHBEARER when offered, else XOAUTH2).
OAUTH2_MECHANISMS = ("auto", "oauthbearer", "xoauth2")
OAUTH_KEYS = ("auth", *_APP_KEYS, "token_command", "oauth2_mechanism")
_LOOPBACK = re.compile(r"127\.\d+\.\d+\.\d+|::1|localhost")


@dataclass(frozen=True)
class OAuthConfig:
    """An account's OAuth2 settings: a registered application with its endpoints, or a token command."""

    account: str
    provider: str | None = None
    client_id: str | None = None
    client_secret: PasswordSource | None = None
    endpoints: Endpoints | None = None
    token_file: Path | None = None
    token_command: str | None = None
    mechanism: str = "auto"  # oauth2_mechanism (archiver.sources.sasl)

    def token_path(self, archive_root: Path) -> Path:
        """Where ``archiver auth`` stores the grant: ``oauth2_token_file`` or ``<archive>/oauth/<account>.json``."""
        from archiver.oauth.store import default_token_path  # tempfile, subprocess: not for every config load

        return self.token_file or default_token_path(archive_root, self.account)

    def client(self) -> OAuthClient:
        """The application talking to the provider (for the flows and refreshes); not for ``token_command``."""
        if self.endpoints is None or self.client_id is None:
            raise ConfigError(
                f"account {self.account!r} gets its tokens from token_command; `archiver auth` has nothing to do"
            )
        from archiver.oauth.client import OAuthClient  # authlib and requests: only for the accounts that use them

        secret = self.client_secret.resolve if self.client_secret else None
        return OAuthClient(self.account, self.endpoints, self.client_id, secret)

    def token_source(self, archive_root: Path) -> TokenSource:
        """What a login asks for its access token."""
        from archiver.oauth.store import TokenFile
        from archiver.oauth.tokens import CommandTokenSource, RefreshingTokenSource

        if self.token_command is not None:
            return CommandTokenSource(self.account, shlex.split(self.token_command))
        return RefreshingTokenSource(self.client(), TokenFile(self.token_path(archive_root), self.account))


def read_oauth(
    table: Table,
    account: str,
    protocol: str,
    client_secret: PasswordSource | None,
    token_command: PasswordSource | None,
    *,
    default_auth: str = "password",
    default_provider: str | None = None,
) -> OAuthConfig | None:
    """The OAuth2 settings of one account table (None for ``auth = "password"``), every mistake one line.

    ``client_secret`` and ``token_command`` are what the config's password
    reader made of the ``oauth2_client_secret*`` keys and of ``token_command``
    (None: not given), so both are checked exactly as passwords are.
    ``default_auth`` and ``default_provider`` come from the account's ``provider``
    preset (archiver.config.provider): ``provider = "gmail"`` means OAuth2 with Google.
    """
    auth = table.choice("auth", AUTH_MODES, default_auth)
    if auth == "password":
        for key in (*_APP_KEYS, "token_command", "oauth2_mechanism"):
            if table.has(key):
                raise table.fail(key, 'only used with auth = "oauth2"; this account logs in with a password')
        return None
    if protocol == "local":
        raise table.fail("auth", 'protocol "local" has no server to log in to')
    mechanism = table.choice("oauth2_mechanism", OAUTH2_MECHANISMS, "auto")
    if token_command is not None:
        for key in _APP_KEYS:
            if table.has(key):
                raise table.fail(key, "not used with token_command (the command provides the access token)")
        return OAuthConfig(account, token_command=token_command.command, mechanism=mechanism)
    name = table.choice("oauth2_provider", tuple(PROVIDERS), default_provider or "", required=default_provider is None)
    client_id = table.string("oauth2_client_id")
    if client_id is None:
        raise table.fail(
            "oauth2_client_id",
            'missing: auth = "oauth2" needs the client id of the application you registered with the provider',
        )
    if provider(name).needs_secret and client_secret is None:
        raise table.fail("", f"provider {name!r} also needs the client secret: one of {', '.join(CLIENT_SECRET_KEYS)}")
    urls = {key: _endpoint(table, f"oauth2_{key}") for key in ("authorize_url", "token_url", "device_url")}
    tenant, scopes = table.string("oauth2_tenant"), table.strings("oauth2_scopes", ()) or None
    try:
        endpoints = resolve_endpoints(name, protocol=protocol, tenant=tenant, scopes=scopes, **urls)
    except ConfigError as exc:
        raise table.fail("", str(exc)) from None
    return OAuthConfig(
        account,
        provider=name,
        client_id=client_id,
        client_secret=client_secret,
        endpoints=endpoints,
        token_file=table.path("oauth2_token_file"),
        mechanism=mechanism,
    )


def _endpoint(table: Table, key: str) -> str | None:
    """An https URL; plain http only to this machine (a token sent in clear elsewhere can be read on the way)."""
    value = table.string(key)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return value
    if parts.scheme == "http" and parts.hostname and _LOOPBACK.fullmatch(parts.hostname):
        return value
    raise table.error(key, "an https:// URL (http:// only to 127.0.0.1 or localhost)", value)
