"""Builders shared by the OAuth2 tests: an :class:`OAuthClient` and a token file aimed at the loopback server."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urljoin

import requests

from archiver.oauth.client import OAuthClient
from archiver.oauth.providers import resolve_endpoints
from archiver.oauth.store import StoredToken, TokenFile
from tests.fixtures.oauth_server import (
    CONFIDENTIAL_CLIENT_ID,
    CONFIDENTIAL_CLIENT_SECRET,
    DOVECOT_CLIENT_ID,
    DOVECOT_CLIENT_SECRET,
    PUBLIC_CLIENT_ID,
    OAuthServer,
)

ACCOUNT = "work"


def client_for(server: OAuthServer, *, confidential: bool = False, timeout: float = 10.0) -> OAuthClient:
    endpoints = resolve_endpoints(
        "custom",
        authorize_url=server.authorize_url,
        token_url=server.token_url,
        device_url=server.device_url,
        scopes=("mail", "offline_access"),
    )
    if confidential:
        return OAuthClient(ACCOUNT, endpoints, CONFIDENTIAL_CLIENT_ID, lambda: CONFIDENTIAL_CLIENT_SECRET, timeout)
    return OAuthClient(ACCOUNT, endpoints, PUBLIC_CLIENT_ID, timeout=timeout)


def stored_grant(server: OAuthServer, tmp_path: Path, user: str = "alice", lifetime: int = 3600) -> TokenFile:
    """A token file holding a fresh grant of ``user``, as `archiver auth` would have left it."""
    store = TokenFile(tmp_path / "archive" / "oauth" / f"{ACCOUNT}.json", ACCOUNT)
    store.save(StoredToken.from_answer(server.issue_tokens(user, lifetime=lifetime)))
    return store


def introspect(server: OAuthServer, token: str) -> dict:
    """What the server says of ``token`` to Dovecot (RFC 7662, authenticated as Dovecot's client)."""
    answer = requests.post(
        server.introspect_url, data={"token": token}, auth=(DOVECOT_CLIENT_ID, DOVECOT_CLIENT_SECRET), timeout=10
    )
    answer.raise_for_status()
    return answer.json()


class FlowInThread:
    """Runs a blocking flow (it waits for a browser) in a thread; the lines it says are collected as they come."""

    def __init__(self, flow: Callable[[Callable[[str], None]], StoredToken]) -> None:
        self.lines: list[str] = []
        self.result: StoredToken | None = None
        self.error: BaseException | None = None
        self._said = threading.Condition()
        self._thread = threading.Thread(target=self._run, args=(flow,), daemon=True)
        self._thread.start()

    def _run(self, flow: Callable[[Callable[[str], None]], StoredToken]) -> None:
        try:
            self.result = flow(self._say)
        except BaseException as exc:  # handed to the test through finish()
            self.error = exc
        with self._said:
            self._said.notify_all()

    def _say(self, line: str) -> None:
        with self._said:
            self.lines.append(line)
            self._said.notify_all()

    def url(self, timeout: float = 10.0) -> str:
        """The authorization URL the flow printed (the line that starts with http)."""
        with self._said:
            self._said.wait_for(lambda: any(line.startswith("http") for line in self.lines) or self.error, timeout)
        if self.error:
            raise self.error
        return next(line for line in self.lines if line.startswith("http"))

    def finish(self, timeout: float = 30.0) -> StoredToken:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the flow did not finish"
        if self.error:
            raise self.error
        assert self.result is not None
        return self.result


def consent(url: str, decision: str, username: str = "alice") -> requests.Response:
    """Open the consent page and press a button, following the redirect back to the flow as a browser does."""
    page = requests.get(url, timeout=10)
    assert page.status_code == 200, page.text
    action = re.search(r"action='([^']+)'", page.text)
    assert action is not None
    target = urljoin(url, action.group(1).replace("&amp;", "&"))
    return requests.post(target, data={"decision": decision, "username": username}, timeout=10)
