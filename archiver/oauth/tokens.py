"""Where a login gets its OAuth2 access token: a stored grant refreshed in time, or the operator's token helper.

The contract the IMAP/POP3/SMTP logins rely on (:class:`TokenSource`):

* ``access_token()`` returns a token good for at least the next few minutes
  (a stored one is refreshed :data:`REFRESH_MARGIN` seconds before it expires).
* ``refused()`` is called when a server rejected the token it was given: it
  gets a new one (one refresh, or one more run of the helper) and returns it.
  The caller retries the login once with it; a second refusal is the server's
  final word.
* A revoked or expired grant raises :class:`AuthorisationExpired`, whose one
  line tells the operator to run ``archiver auth ACCOUNT``.

Both are thread-safe; tokens never appear in ``repr``, logs or errors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Protocol

from archiver.config.secrets import run_secret_command
from archiver.errors import AuthorisationExpired, SecretError
from archiver.logs import register_secret
from archiver.oauth.client import OAuthClient, OAuthError
from archiver.oauth.store import StoredToken, TokenFile

#: Refresh this long before the provider's expiry: clocks drift, and a login takes a while.
REFRESH_MARGIN = 300.0
TOKEN_COMMAND_TIMEOUT = 30.0


class TokenSource(Protocol):
    """What a SASL XOAUTH2/OAUTHBEARER login asks for its bearer token."""

    def access_token(self) -> str: ...

    def refused(self) -> str: ...


def reauthorise_message(account: str) -> str:
    return (
        f"account {account}: the OAuth2 authorisation was revoked or has expired; "
        f"re-authorise with `archiver auth {account}`"
    )


class RefreshingTokenSource:
    """The stored grant of one account: the access token from the token file, refreshed with authlib."""

    def __init__(self, client: OAuthClient, store: TokenFile, margin: float = REFRESH_MARGIN) -> None:
        self.account = client.account
        self._client = client
        self._store = store
        self._margin = margin
        self._current: StoredToken | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RefreshingTokenSource(account={self.account!r}, file={str(self._store.path)!r})"

    def access_token(self) -> str:
        with self._lock:
            token = self._current or self._store.load()
            self._current = token
            if self._usable(token):
                return token.access_token or ""
            return self._refresh(stale=token.access_token)

    def refused(self) -> str:
        with self._lock:
            current = self._current or self._store.load()
            return self._refresh(stale=current.access_token)

    def _usable(self, token: StoredToken) -> bool:
        return (
            bool(token.access_token) and token.expires_at is not None and token.expires_at - self._margin > time.time()
        )

    def _refresh(self, stale: str | None) -> str:
        """A new access token in place of ``stale``; another process's fresh one if it refreshed meanwhile."""
        with self._store.locked():
            token = self._store.load()
            if token.access_token != stale and self._usable(token):
                self._current = token
                return token.access_token or ""
            if not token.refresh_token:
                raise AuthorisationExpired(reauthorise_message(self.account))
            try:
                answer = self._client.refresh(token.refresh_token)
            except OAuthError as exc:
                if exc.error == "invalid_grant":  # RFC 6749 5.2: the grant is revoked or expired
                    raise AuthorisationExpired(reauthorise_message(self.account)) from None
                raise self._client.refusal(exc, "refreshing the OAuth2 access token") from None
            fresh = StoredToken.from_answer(answer, previous=token)
            if not fresh.access_token:
                raise AuthorisationExpired(reauthorise_message(self.account))
            self._store.save(fresh)  # before use: a rotated refresh token must survive a crash right after
            self._current = fresh
            return fresh.access_token


class CommandTokenSource:
    """``token_command``: the operator's helper prints the access token; run again when it is refused.

    Run without a shell and bounded in output and time exactly as
    ``password_command`` is (:func:`archiver.config.secrets.run_secret_command`);
    its stdout stripped of surrounding whitespace is the token.
    """

    def __init__(self, account: str, argv: Sequence[str], timeout: float = TOKEN_COMMAND_TIMEOUT) -> None:
        self.account = account
        self.argv = list(argv)
        self.timeout = timeout
        self._token: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CommandTokenSource(account={self.account!r}, command={self.argv[:1]!r})"

    def access_token(self) -> str:
        with self._lock:
            if self._token is None:
                self._token = self._run()
            return self._token

    def refused(self) -> str:
        with self._lock:
            self._token = self._run()
            return self._token

    def _run(self) -> str:
        where = f"account {self.account!r}: token_command {self.argv[0]!r}" if self.argv else "token_command"
        output = run_secret_command(self.argv, where, self.timeout)
        try:
            token = output.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise SecretError(f"{where}: its output is not valid UTF-8") from None
        if not token:
            raise SecretError(f"{where}: printed no token")
        register_secret(token)
        return token
