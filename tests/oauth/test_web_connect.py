"""An admin connects an OAuth2 account from the web UI: the device flow against the real loopback server."""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from archiver.oauth.store import TokenFile
from tests.fixtures.archives import OpenArchive
from tests.fixtures.oauth_helpers import introspect, oauth_account
from tests.fixtures.oauth_server import OAuthServer
from tests.fixtures.web import WEB_USERS, form_token, log_in
from tests.fixtures.webdata import web_config
from web import create_app


@pytest.fixture
def app(oauth_server: OAuthServer, tmp_path: Path, open_archive: OpenArchive) -> Iterator[Flask]:
    oauth_server.device_interval = 1  # the page polls once a second instead of every 5
    accounts = oauth_account(oauth_server) + oauth_account(oauth_server, "gmailish", device=False)
    config = web_config(tmp_path, WEB_USERS, extra_accounts=accounts)
    open_archive(config).close()
    application = create_app(config, testing=True)
    application.config["SERVER_NAME"] = urlsplit(BASE).netloc  # the test client and url_for(_external) use it
    yield application
    application.extensions["archiver_archive"].close()
    application.extensions["archiver_sessions"].close()


BASE = "http://127.0.0.1:5000"  # the web UI's address as the browser sees it (the provider accepts loopback)


def admin(app: Flask) -> FlaskClient:
    client = app.test_client()
    log_in(client, "root", "root-pass")
    return client


def start(client: FlaskClient) -> str:
    """Press Connect; the page now shows the code (returned)."""
    answer = client.post("/oauth/work/connect", data={"csrf_token": form_token(client, "/oauth/work")})
    assert answer.status_code == 302
    page = client.get("/oauth/work").get_data(as_text=True)
    assert 'http-equiv="refresh"' in page
    return re.search(r'<code id="user-code">([^<]+)</code>', page).group(1)


def token_file(app: Flask) -> TokenFile:
    config = app.extensions["archiver_config"]
    return TokenFile(config.account("work").oauth2.token_path(config.archive.path), "work")


def test_connect_shows_the_code_polls_and_stores_the_grant(app: Flask, oauth_server: OAuthServer) -> None:
    client = admin(app)
    assert "Not connected yet" in client.get("/oauth/work").get_data(as_text=True)
    code = start(client)
    page = client.get("/oauth/work").get_data(as_text=True)
    assert f"{oauth_server.base_url}/device" in page and code in page  # where to go, what to type
    oauth_server.approve_device(code, "alice")
    time.sleep(1.1)  # the poll interval the server asked for
    page = client.get("/oauth/work", follow_redirects=True).get_data(as_text=True)
    assert "Account work is connected" in page and 'http-equiv="refresh"' not in page
    store = token_file(app)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    grant = store.load()
    assert introspect(oauth_server, grant.access_token)["username"] == "alice"
    assert grant.access_token not in page and grant.refresh_token not in page
    assert oauth_server.token_requests.count("urn:ietf:params:oauth:grant-type:device_code") >= 1


def test_reloading_faster_than_the_interval_does_not_poll(app: Flask, oauth_server: OAuthServer) -> None:
    client = admin(app)
    start(client)
    for _ in range(5):
        client.get("/oauth/work")
    assert oauth_server.token_requests == []  # no poll before the interval: no slow_down earned


def test_a_denial_is_one_line_and_ends_the_flow(app: Flask, oauth_server: OAuthServer) -> None:
    client = admin(app)
    oauth_server.deny_device(start(client))
    time.sleep(1.1)
    page = client.get("/oauth/work").get_data(as_text=True)
    assert "account &#39;work&#39;: the authorisation was denied at the provider" in page
    assert 'http-equiv="refresh"' not in page and not token_file(app).exists()


def test_only_admins_and_only_with_the_form_token(app: Flask) -> None:
    bob = app.test_client()
    log_in(bob, "bob", "bob-pass")
    assert bob.get("/oauth/work").status_code == 403
    assert bob.post("/oauth/work/connect", data={"csrf_token": form_token(bob, "/")}).status_code == 403
    root = admin(app)
    assert root.post("/oauth/work/connect", data={}).status_code == 400  # no CSRF token
    assert root.get("/oauth/alpha").status_code == 404  # not an OAuth2 account
    assert root.get("/oauth/nope").status_code == 404


def test_a_provider_without_device_flow_offers_the_redirect_flow(app: Flask) -> None:
    page = admin(app).get("/oauth/gmailish").get_data(as_text=True)
    assert "Connect in this browser" in page and "with a code" not in page  # no device flow to offer
    assert f'<code id="callback">{BASE}/oauth/callback</code>' in page  # what to register with the provider
    assert "archiver auth gmailish" in page


def consent(location: str, decision: str, username: str = "dave") -> str:
    """The user at the provider's consent page (the real server's form, posted as the browser would)."""
    answer = requests.post(location, data={"username": username, "decision": decision}, allow_redirects=False)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def test_connect_in_this_browser_with_pkce(app: Flask, oauth_server: OAuthServer) -> None:
    client = admin(app)
    start = client.get("/oauth/gmailish/authorize")
    assert start.status_code == 302
    location = start.headers["Location"]
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(oauth_server.authorize_url)
    assert query["code_challenge_method"] == ["S256"] and query["redirect_uri"] == [f"{BASE}/oauth/callback"]
    back = consent(location, "approve")
    assert back.startswith(f"{BASE}/oauth/callback?")
    landed = client.get(back.removeprefix(BASE), follow_redirects=True).get_data(as_text=True)
    assert "Account gmailish is connected" in landed
    config = app.extensions["archiver_config"]
    grant = TokenFile(config.account("gmailish").oauth2.token_path(config.archive.path), "gmailish").load()
    assert introspect(oauth_server, grant.access_token)["username"] == "dave"
    assert oauth_server.token_requests == ["authorization_code"]  # with the verifier: S256 is required there
    assert client.get(back.removeprefix(BASE)).status_code == 400  # the same answer again: its state is spent


def test_a_denied_or_foreign_redirect_answer(app: Flask, oauth_server: OAuthServer) -> None:
    root = admin(app)
    back = consent(root.get("/oauth/gmailish/authorize").headers["Location"], "deny")
    other = app.test_client()
    log_in(other, "root", "root-pass")  # the same admin in another browser: not the one who started it
    assert other.get(back.removeprefix(BASE)).status_code == 400
    back = consent(root.get("/oauth/gmailish/authorize").headers["Location"], "deny")
    page = root.get(back.removeprefix(BASE), follow_redirects=True).get_data(as_text=True)
    assert "account &#39;gmailish&#39;: the authorisation was denied in the browser" in page
    bob = app.test_client()
    log_in(bob, "bob", "bob-pass")
    assert bob.get("/oauth/gmailish/authorize").status_code == 403
    assert bob.get("/oauth/callback?state=x&code=y").status_code == 403
    assert oauth_server.token_requests == []
