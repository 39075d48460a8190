"""The loopback redirect flow with PKCE (RFC 8252 + RFC 7636 S256), for providers without a device flow (Google).

The browser that approves sends the user back to ``http://127.0.0.1:PORT/``,
where this module listens for exactly one answer.  On a headless appliance the
browser is on another machine: ``ssh -L PORT:127.0.0.1:PORT appliance`` makes
that machine's 127.0.0.1:PORT reach ours, so the same URL works there; hence a
fixed ``--port`` is allowed and the hint names it.  The ``state`` is checked
(an answer for another request is refused), the code verifier never leaves this
process but for the token endpoint, and the wait is bounded.
"""

from __future__ import annotations

import html
import http.server
import socket
import threading
from collections.abc import Callable
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

from authlib.common.security import generate_token

from archiver.errors import AuthError, ConnectError
from archiver.oauth.client import OAuthClient, OAuthError
from archiver.oauth.store import StoredToken

LOOPBACK_HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 300.0


class _Answer:
    """What the browser brought back: the query of the redirect, once."""

    def __init__(self) -> None:
        self.query: dict[str, str] | None = None
        self.arrived = threading.Event()


class _Handler(http.server.BaseHTTPRequestHandler):
    answer: ClassVar[_Answer]
    expected_state: ClassVar[str]

    def do_GET(self) -> None:
        query = {key: values[0] for key, values in parse_qs(urlsplit(self.path).query).items()}
        if urlsplit(self.path).path != "/" or not ({"code", "error"} & query.keys()):
            self._reply(404, "Not found", "This address only receives the answer of the sign-in.")
            return
        if query.get("state") != self.expected_state:
            self._reply(400, "Wrong request", "This answer belongs to another sign-in; it was ignored.")
            return
        if "error" in query:
            self._reply(200, "Not authorised", "The authorisation was refused. You can close this tab.")
        else:
            self._reply(200, "Authorised", "archiver received the authorisation. You can close this tab.")
        type(self).answer.query = query
        type(self).answer.arrived.set()

    def _reply(self, status: int, title: str, text: str) -> None:
        body = (
            f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title></head>"
            f"<body><h1>{title}</h1><p>{html.escape(text)}</p></body></html>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # the query holds the code: never print it
        pass


def loopback_flow(
    client: OAuthClient,
    say: Callable[[str], None],
    port: int = 0,
    timeout: float = DEFAULT_TIMEOUT,
) -> StoredToken:
    """Print the URL, wait for the browser's redirect on 127.0.0.1:``port`` (0: any free port), return the token."""
    account = client.account
    endpoints = client.endpoints
    if endpoints.authorize_url is None:
        raise AuthError(f"account {account!r}: provider {endpoints.provider!r} has no authorize URL; use --flow device")
    answer = _Answer()
    handler = type("Handler", (_Handler,), {"answer": answer, "expected_state": generate_token(32)})
    try:
        server = http.server.ThreadingHTTPServer((LOOPBACK_HOST, port), handler)
    except OSError as exc:
        raise ConnectError(
            f"account {account!r}: cannot listen on {LOOPBACK_HOST}:{port} ({exc.strerror or exc}); "
            "choose another with --port"
        ) from None
    port = server.server_port
    redirect_uri = f"http://{LOOPBACK_HOST}:{port}/"
    verifier = generate_token(64)
    url = authorization_url(client, redirect_uri, handler.expected_state, verifier)
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), name="oauth-loopback", daemon=True)
    thread.start()
    try:
        say(f"To authorise account {account}, open this URL in a browser on this machine and approve:")
        say(url)
        say(
            f"On a machine without a browser: from your desktop run "
            f"`ssh -L {port}:{LOOPBACK_HOST}:{port} {socket.gethostname()}`, then open the URL there "
            f"(pick the port with --port)."
        )
        say(f"Waiting up to {timeout:g} s for the browser on {LOOPBACK_HOST}:{port}...")
        if not answer.arrived.wait(timeout):
            raise AuthError(f"account {account!r}: no answer from the browser within {timeout:g} s; run it again")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    return finish_redirect(client, answer.query or {}, verifier, redirect_uri)


def authorization_url(client: OAuthClient, redirect_uri: str, state: str, verifier: str) -> str:
    """Where to send the browser: the provider's authorize URL with ``state`` and the S256 challenge of ``verifier``.

    Shared with the web UI's redirect flow (its own callback URL instead of 127.0.0.1).
    """
    endpoints = client.endpoints
    if endpoints.authorize_url is None:
        raise AuthError(f"account {client.account!r}: provider {endpoints.provider!r} has no authorize URL")
    with client.session(redirect_uri=redirect_uri, code_challenge_method="S256") as session:
        url, _ = session.create_authorization_url(
            endpoints.authorize_url, state=state, code_verifier=verifier, **dict(endpoints.authorize_params)
        )
    return url


def finish_redirect(client: OAuthClient, query: dict[str, str], verifier: str, redirect_uri: str) -> StoredToken:
    """The token for the redirect's ``query`` (its ``state`` already checked); a denial or refusal is one line."""
    account = client.account
    if "error" in query:
        error = query["error"]
        if error == "access_denied":
            raise AuthError(f"account {account!r}: the authorisation was denied in the browser")
        raise AuthError(f"account {account!r}: the provider refused the authorisation ({error[:100]})")
    if not query.get("code"):
        raise AuthError(f"account {account!r}: the provider's answer holds no authorisation code")
    try:
        token = client.exchange_code(query["code"], verifier, redirect_uri)
    except OAuthError as exc:
        raise client.refusal(exc, "exchanging the authorisation code") from None
    return StoredToken.from_answer(token)
