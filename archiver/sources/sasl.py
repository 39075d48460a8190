"""Bearer-token logins (SASL XOAUTH2 and OAUTHBEARER) shared by IMAP, POP3 and the SMTP alerts.

Why one module: the three protocols differ only in how a SASL exchange is
framed; what a token login *means* is the same everywhere and must not drift:

* the mechanism: OAUTHBEARER (RFC 7628, the standard) when the server offers
  it, else XOAUTH2 (Google's and Microsoft's original); ``oauth2_mechanism``
  can force one;
* the token comes from a :class:`~archiver.oauth.tokens.TokenSource`, is
  registered as a secret before it goes on the wire, and never appears in an
  error message (a server echoing it is masked too);
* a refused token is retried exactly once, with the token ``refused()`` hands
  out (one refresh, or one more run of ``token_command``): an access token can
  be revoked or expire early at the provider without the grant being gone; a
  second refusal is the server's final word, reported with what to check.

A revoked grant is not a refusal: :class:`~archiver.errors.AuthorisationExpired`
comes out of the token source and passes through unchanged, with its
"re-authorise with `archiver auth NAME`" line.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from archiver.errors import AuthError
from archiver.logs import mask, register_secret

if TYPE_CHECKING:  # authlib and requests load only for accounts that use OAuth2
    from archiver.config import AccountConfig
    from archiver.oauth.tokens import TokenSource

log = logging.getLogger("archiver.sources")

_PREFERRED = ("OAUTHBEARER", "XOAUTH2")


class TokenRefused(Exception):  # a signal between a protocol's attempt and login_with_token, never shown as such
    """The server answered a token login with a refusal; ``reason`` is its words (masked, one line)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class BearerLogin:
    """Who logs in where with which mechanism: everything a SASL initial response needs but the token."""

    user: str
    mechanism: str  # "XOAUTH2" or "OAUTHBEARER"
    host: str
    port: int

    def initial_response(self, token: str) -> str:
        """The client's first (and only) message, before base64 (the protocol's framing adds it)."""
        if self.mechanism == "XOAUTH2":
            return f"user={self.user}\x01auth=Bearer {token}\x01\x01"
        # RFC 7628 3.1: a GS2 header naming the authorisation identity (',' and '=' escaped), then key/values.
        identity = self.user.replace("=", "=3D").replace(",", "=2C")
        return f"n,a={identity},\x01host={self.host}\x01port={self.port}\x01auth=Bearer {token}\x01\x01"

    def encoded(self, token: str) -> str:
        return base64.b64encode(self.initial_response(token).encode("utf-8")).decode("ascii")

    def responder(self, token: str) -> Callable[..., str]:
        """The client side of one exchange, for imaplib's and smtplib's SASL hooks.

        First the initial response; to any later challenge (a failing server
        sends its error details, RFC 7628 3.2.3) an empty response, which ends
        the exchange with the server's refusal instead of a protocol error.
        """
        sent = False
        # RFC 7628 3.2.3: OAUTHBEARER answers the error challenge with a lone %x01; XOAUTH2 with nothing.
        after_error = "\x01" if self.mechanism == "OAUTHBEARER" else ""

        def respond(challenge: bytes | None = None) -> str:
            nonlocal sent
            if sent:
                return after_error
            sent = True
            return self.initial_response(token)

        return respond


def account_tokens(account: AccountConfig, archive_root: Path) -> TokenSource | None:
    """The token source of an ``auth = "oauth2"`` account (None: it logs in with its password).

    Make one per run (or restore) and hand it to every connection of it, so a
    reconnect reuses the token a refresh just got instead of refreshing again.
    """
    return None if account.oauth2 is None else account.oauth2.token_source(archive_root)


def choose_mechanism(setting: str, offered: Iterable[str], where: str) -> str:
    """The mechanism to use: ``setting`` (``oauth2_mechanism``: "auto", OAUTHBEARER before XOAUTH2, or one of them)
    among what the server ``offered``.

    ``offered`` is the server's SASL mechanism names (any case).  A server that
    advertises none of the two gets one clear line, not a login that can only fail.
    """
    names = {name.upper() for name in offered}
    wanted = _PREFERRED if setting == "auto" else (setting.upper(),)
    for name in wanted:
        if name in names:
            return name
    shown = ", ".join(sorted(names)) or "none"
    if setting == "auto":
        raise AuthError(
            f"{where}: the server offers no OAuth2 login (SASL OAUTHBEARER or XOAUTH2; it offers {shown}); "
            'use auth = "password" for this server'
        )
    raise AuthError(
        f'{where}: the server does not offer {setting.upper()} (it offers {shown}); set oauth2_mechanism = "auto"'
    )


def login_with_token(tokens: TokenSource, attempt: Callable[[str], None], where: str, login: BearerLogin) -> None:
    """Run ``attempt(token)`` with the current access token; on :class:`TokenRefused`, once more with a fresh one.

    ``attempt`` performs the protocol's exchange on a connection that is still
    usable after a refusal (IMAP, POP3 and SMTP all allow a second AUTH).
    """
    token = tokens.access_token()
    register_secret(token)
    try:
        attempt(token)
        return
    except TokenRefused as exc:
        log.info("%s: %s login refused (%s); trying once more with a fresh token", where, login.mechanism, exc.reason)
    token = tokens.refused()
    register_secret(token)
    try:
        attempt(token)
    except TokenRefused as exc:
        raise AuthError(
            f"{where}: {login.mechanism} login refused for user {login.user!r} even with a fresh OAuth2 token "
            f"({exc.reason}); check that the token was granted for this mailbox and with the mail scope"
        ) from None


def server_reason(text: str | bytes) -> str:
    """A server's refusal as one masked line (a server may echo what it was sent)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return mask(" ".join(text.split()))[:200] or "no reason given"


__all__ = [
    "BearerLogin",
    "TokenRefused",
    "account_tokens",
    "choose_mechanism",
    "login_with_token",
    "server_reason",
]
