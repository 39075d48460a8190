"""The device authorization flow (RFC 8628) through every answer of the real loopback server.

The user's side is scripted in the flow's ``sleep``: each wait between two
polls is a moment where the user may act (approve on the verification page,
deny, let the code expire).  The waits are recorded instead of slept, so the
intervals the flow chose (5 s, +5 s per ``slow_down``) are asserted exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
import requests

from archiver.errors import AuthError
from archiver.oauth.device import device_flow
from tests.fixtures.oauth_helpers import client_for, introspect
from tests.fixtures.oauth_server import OAuthServer


class User:
    """Acts at the given poll numbers (1 = before the first poll), and records every wait."""

    def __init__(self, actions: dict[int, Callable[[], None]]) -> None:
        self.actions = actions
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        action = self.actions.get(len(self.waits))
        if action:
            action()


def user_code(lines: list[str]) -> str:
    return lines[0].rsplit(" ", 1)[1]


def approve_on_page(server: OAuthServer, code: str, username: str) -> None:
    """What the user does in a browser: the verification page's form, Approve."""
    page = requests.post(
        f"{server.base_url}/device", data={"user_code": code, "username": username, "decision": "approve"}, timeout=10
    )
    assert page.status_code == 200 and "Approved" in page.text


def test_pending_then_approved_on_the_verification_page(oauth_server: OAuthServer) -> None:
    lines: list[str] = []
    user = User({3: lambda: approve_on_page(oauth_server, user_code(lines), "dave")})
    token = device_flow(client_for(oauth_server), lines.append, sleep=user.sleep)
    assert lines[0] == (
        f"To authorise account work, open {oauth_server.base_url}/device in any browser "
        f"and enter the code {user_code(lines)}"
    )
    assert user.waits == [5, 5, 5]  # two polls answered authorization_pending, the third got the token
    assert oauth_server.token_requests.count("urn:ietf:params:oauth:grant-type:device_code") == 3
    assert introspect(oauth_server, token.access_token or "") | {"exp": 0, "iat": 0} == {
        "active": True, "username": "dave", "email": "dave", "sub": "dave", "client_id": "archiver-public",
        "scope": "mail offline_access", "token_type": "Bearer", "exp": 0, "iat": 0,
    }  # fmt: skip
    assert token.refresh_token


def test_slow_down_adds_five_seconds_for_good(oauth_server: OAuthServer) -> None:
    lines: list[str] = []
    oauth_server.slow_down_next_polls(2)
    user = User({4: lambda: oauth_server.approve_device(user_code(lines), "erin")})
    token = device_flow(client_for(oauth_server), lines.append, sleep=user.sleep)
    assert user.waits == [5, 10, 15, 15]
    assert introspect(oauth_server, token.access_token or "")["username"] == "erin"


def test_an_expired_code_is_one_line(oauth_server: OAuthServer) -> None:
    user = User({2: oauth_server.expire_device_codes})
    with pytest.raises(AuthError) as caught:
        device_flow(client_for(oauth_server), lambda line: None, sleep=user.sleep)
    assert str(caught.value) == (
        "account 'work': the code expired before it was approved; run `archiver auth work` again"
    )


def test_a_denial_is_one_line(oauth_server: OAuthServer) -> None:
    lines: list[str] = []
    user = User({1: lambda: oauth_server.deny_device(user_code(lines))})
    with pytest.raises(AuthError) as caught:
        device_flow(client_for(oauth_server), lines.append, sleep=user.sleep)
    assert str(caught.value) == "account 'work': the authorisation was denied at the provider"
    assert len(user.waits) == 1


def test_a_confidential_client_gets_its_token_too(oauth_server: OAuthServer) -> None:
    lines: list[str] = []
    user = User({1: lambda: oauth_server.approve_device(user_code(lines), "frank")})
    token = device_flow(client_for(oauth_server, confidential=True), lines.append, sleep=user.sleep)
    assert introspect(oauth_server, token.access_token or "")["client_id"] == "archiver-confidential"


def test_a_provider_without_device_flow_says_to_use_the_loopback_one(oauth_server: OAuthServer) -> None:
    client = client_for(oauth_server)
    client.endpoints = replace(client.endpoints, device_url=None)
    with pytest.raises(AuthError, match=r"offers no device flow for this scope; use --flow loopback$"):
        device_flow(client, lambda line: None, sleep=lambda s: None)
