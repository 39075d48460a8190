"""The loopback redirect flow with PKCE against the real server, the browser played by plain HTTP requests.

(tests/browser/test_oauth_browser.py does the same with a real Chromium.)
"""

from __future__ import annotations

import socket
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from archiver.errors import AuthError, ConnectError
from archiver.oauth.loopback import loopback_flow
from tests.fixtures.oauth_helpers import FlowInThread, client_for, consent, introspect
from tests.fixtures.oauth_server import OAuthServer


def test_approve_gives_a_token_for_the_user(oauth_server: OAuthServer) -> None:
    flow = FlowInThread(lambda say: loopback_flow(client_for(oauth_server), say, timeout=30))
    url = flow.url()
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["redirect_uri"][0].startswith("http://127.0.0.1:")
    back = consent(url, "approve", username="grace")
    assert back.status_code == 200 and "You can close this tab." in back.text
    token = flow.finish()
    assert introspect(oauth_server, token.access_token or "")["username"] == "grace"
    assert token.refresh_token
    port = urlsplit(query["redirect_uri"][0]).port
    assert any(f"ssh -L {port}:127.0.0.1:{port} " in line for line in flow.lines)


def test_deny_is_one_line(oauth_server: OAuthServer) -> None:
    flow = FlowInThread(lambda say: loopback_flow(client_for(oauth_server), say, timeout=30))
    back = consent(flow.url(), "deny")
    assert "refused" in back.text
    with pytest.raises(AuthError) as caught:
        flow.finish()
    assert str(caught.value) == "account 'work': the authorisation was denied in the browser"


def test_an_answer_with_another_state_is_ignored(oauth_server: OAuthServer) -> None:
    flow = FlowInThread(lambda say: loopback_flow(client_for(oauth_server), say, timeout=30))
    redirect = parse_qs(urlsplit(flow.url()).query)["redirect_uri"][0]
    forged = requests.get(redirect, params={"code": "stolen", "state": "not-ours"}, timeout=10)
    assert forged.status_code == 400
    assert requests.get(urljoin(redirect, "/favicon.ico"), timeout=10).status_code == 404
    consent(flow.url(), "approve")
    assert flow.finish().access_token  # the real answer still got through


def test_no_browser_within_the_timeout_is_one_line(oauth_server: OAuthServer) -> None:
    flow = FlowInThread(lambda say: loopback_flow(client_for(oauth_server), say, timeout=0.5))
    with pytest.raises(AuthError) as caught:
        flow.finish()
    assert str(caught.value) == "account 'work': no answer from the browser within 0.5 s; run it again"


def test_a_port_in_use_is_one_line(oauth_server: OAuthServer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(ConnectError) as caught:
            loopback_flow(client_for(oauth_server), lambda line: None, port=port, timeout=1)
    assert str(caught.value) == (
        f"account 'work': cannot listen on 127.0.0.1:{port} (Address already in use); choose another with --port"
    )
