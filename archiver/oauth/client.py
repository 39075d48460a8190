"""One account's OAuth2 client: authlib's requests session, bounded in time, its failures made one line each.

Why a wrapper: every HTTP call to a provider must have a timeout, and what can
go wrong (no route, a TLS failure, a gateway's HTML error page, a JSON error
answer) must reach the user as one sentence naming the account, never as a
traceback and never with a secret in it.  The flows and the refreshing token
source all go through here.  The client secret is resolved only when a request
needs it, and masked in logs from then on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from archiver.errors import AuthError, ConnectError, ProtocolError, TLSError
from archiver.logs import register_secret
from archiver.oauth.providers import Endpoints

HTTP_TIMEOUT = 30.0
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
__all__ = ["DEVICE_GRANT", "HTTP_TIMEOUT", "OAuthClient", "OAuthError"]


class OAuthClient:
    """The registered application (client id, optional secret) talking to one account's provider."""

    def __init__(
        self,
        account: str,
        endpoints: Endpoints,
        client_id: str,
        client_secret: Callable[[], str] | None = None,
        timeout: float = HTTP_TIMEOUT,
    ) -> None:
        self.account = account
        self.endpoints = endpoints
        self.client_id = client_id
        self._client_secret = client_secret
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"OAuthClient(account={self.account!r}, provider={self.endpoints.provider!r})"

    def session(self, **kwargs: Any) -> OAuth2Session:
        """A fresh authlib session: ``client_secret_post`` with a secret, else a public client (``none``)."""
        secret = self._client_secret() if self._client_secret else None
        if secret:
            register_secret(secret)
        return OAuth2Session(
            self.client_id,
            secret,
            scope=self.endpoints.scope or None,
            token_endpoint_auth_method="client_secret_post" if secret else "none",
            default_timeout=self.timeout,
            **kwargs,
        )

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        """A new access token (and maybe a new refresh token) for ``refresh_token``; OAuthError as answered."""
        with self.calling("refreshing the OAuth2 access token"), self.session() as session:
            return dict(session.refresh_token(self.endpoints.token_url, refresh_token=refresh_token))

    def exchange_code(self, code: str, code_verifier: str, redirect_uri: str) -> dict[str, Any]:
        with self.calling("exchanging the authorisation code"), self.session(redirect_uri=redirect_uri) as session:
            return dict(
                session.fetch_token(
                    self.endpoints.token_url,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
            )

    def start_device(self) -> dict[str, Any]:
        """The device authorization answer (RFC 8628 3.2): device_code, user_code, verification_uri, ..."""
        url = self.endpoints.device_url
        if url is None:
            raise AuthError(
                f"account {self.account!r}: provider {self.endpoints.provider!r} offers no device flow "
                "for this scope; use --flow loopback"
            )
        with self.calling("starting the device authorization"), self.session() as session:
            data = {"client_id": self.client_id, "scope": self.endpoints.scope}
            if session.client_secret:
                data["client_secret"] = session.client_secret
            answer = session.parse_response_token(session.post(url, data=data, withhold_token=True))
        if not all(isinstance(answer.get(key), str) for key in ("device_code", "user_code")):
            raise ProtocolError(f"account {self.account!r}: the device authorization answer lacks its codes")
        return dict(answer)

    def poll_device(self, device_code: str) -> dict[str, Any]:
        """One poll of the token endpoint; ``authorization_pending`` and friends arrive as :class:`OAuthError`."""
        with self.calling("polling for the device authorization"), self.session() as session:
            return dict(session.fetch_token(self.endpoints.token_url, grant_type=DEVICE_GRANT, device_code=device_code))

    @contextlib.contextmanager
    def calling(self, what: str) -> Iterator[None]:
        """Turn the failures of an HTTP exchange into one line; :class:`OAuthError` passes for the caller to judge.

        An :class:`OAuthError` the caller does not handle should go through :meth:`refusal`.
        """
        host = urlsplit(self.endpoints.token_url).hostname or self.endpoints.token_url
        where = f"account {self.account!r}: {what}"
        try:
            yield
        except OAuthError:
            raise
        except requests.exceptions.SSLError:
            raise TLSError(f"{where}: the TLS handshake with {host} failed (certificate not trusted?)") from None
        except requests.Timeout:
            raise ConnectError(f"{where}: {host} did not answer within {self.timeout:g} s") from None
        except requests.ConnectionError:
            raise ConnectError(f"{where}: cannot reach {host}") from None
        except requests.HTTPError as exc:
            raise ProtocolError(f"{where}: {host} {_describe(exc.response)}, not an OAuth2 answer") from None
        except ValueError:  # authlib: a 2xx/4xx body that is not a JSON object
            raise ProtocolError(f"{where}: {host} answered something that is not OAuth2 JSON (an HTML page?)") from None
        except requests.RequestException as exc:
            raise ConnectError(f"{where}: {type(exc).__name__} talking to {host}") from None

    def refusal(self, error: OAuthError, what: str) -> AuthError:
        """The one line for an OAuth2 error answer nobody handled more specifically."""
        if error.error == "invalid_client":
            return AuthError(
                f"account {self.account!r}: {what}: the provider does not accept this client "
                "(invalid_client); check oauth2_client_id and the client secret"
            )
        detail = f" ({error.description[:200]})" if error.description else ""
        return AuthError(f"account {self.account!r}: {what}: the provider answered {error.error}{detail}")


def _describe(response: requests.Response | None) -> str:
    if response is None:
        return "answered nothing usable"
    kind = response.headers.get("Content-Type", "").split(";")[0].strip() or "no content type"
    page = " (an HTML page)" if "html" in kind else f" ({kind})"
    return f"answered HTTP {response.status_code}{page}"
