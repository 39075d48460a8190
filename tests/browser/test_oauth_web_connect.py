"""An admin connects an OAuth2 account through the web UI in a real headless Chromium, both ways.

Device flow: the archiver page shows a code, a second tab enters it on the authorization server's device page
and approves, and the first tab, reloading itself, says the account is connected.  Redirect flow: the tab goes
to the server's consent page, approves, and comes back to the web UI's callback.  Either way the stored grant
is one the server recognises."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher

from archiver.oauth.store import TokenFile
from tests.fixtures.archives import OpenArchive
from tests.fixtures.oauth_helpers import introspect, oauth_account
from tests.fixtures.oauth_server import OAuthServer
from tests.fixtures.web import served
from tests.fixtures.webdata import web_config

pytestmark = pytest.mark.browser


@pytest.fixture
def site(oauth_server: OAuthServer, tmp_path, open_archive: OpenArchive) -> Iterator[tuple[str, Any]]:

    from web import create_app

    oauth_server.device_interval = 1
    users = f'[[web.users]]\nname = "root"\npassword_hash = "{PasswordHasher().hash("root-pass")}"\nadmin = true\n'
    accounts = oauth_account(oauth_server) + oauth_account(oauth_server, "gmailish", device=False)
    config = web_config(tmp_path, users, extra_accounts=accounts)
    open_archive(config).close()
    app = create_app(config)
    with served(app) as port:
        yield f"http://127.0.0.1:{port}", app
    app.extensions["archiver_archive"].close()


def logged_in(context: Any, base: str) -> Any:
    tab = context.new_page()
    tab.goto(base + "/")
    tab.fill("#username", "root")
    tab.fill("#password", "root-pass")
    tab.click("button[type=submit]")
    tab.wait_for_url(base + "/")
    return tab


def test_connect_an_account_with_the_device_flow_in_the_browser(browser, site, oauth_server: OAuthServer) -> None:
    base, app = site
    context = browser.new_context()
    try:
        tab = logged_in(context, base)
        tab.click("tr:has-text('work') >> text=OAuth2 sign-in")
        assert "Not connected yet" in tab.inner_text("main")
        tab.click("button:has-text('Connect')")
        code = tab.inner_text("#user-code")
        verification = tab.get_attribute("#device-code a", "href")
        assert verification == f"{oauth_server.base_url}/device"

        provider = context.new_page()  # the user, in another tab, at the provider
        provider.goto(verification)
        provider.fill("input[name=user_code]", code)
        provider.fill("input[name=username]", "carol")
        provider.click("text=Approve")
        assert "Approved" in provider.inner_text("body")

        tab.wait_for_selector("text=Account work is connected", timeout=15000)  # the page reloads itself
        assert "Connected: the grant was stored" in tab.inner_text("main")
    finally:
        context.close()
    config = app.extensions["archiver_config"]
    grant = TokenFile(config.account("work").oauth2.token_path(config.archive.path), "work").load()
    assert introspect(oauth_server, grant.access_token)["username"] == "carol"


def test_connect_an_account_with_the_redirect_flow_in_the_browser(browser, site, oauth_server: OAuthServer) -> None:
    """The provider's consent page and back to /oauth/callback, all in one tab; the code is exchanged with PKCE."""
    base, app = site
    context = browser.new_context()
    try:
        tab = logged_in(context, base)
        tab.goto(base + "/oauth/gmailish")
        tab.click("#connect-here")
        assert "asks to read your mail" in tab.inner_text("body")  # at the provider
        tab.fill("input[name=username]", "erin")
        tab.click("text=Approve")
        tab.wait_for_url(base + "/oauth/gmailish")
        assert "Account gmailish is connected" in tab.inner_text("main")
    finally:
        context.close()
    config = app.extensions["archiver_config"]
    grant = TokenFile(config.account("gmailish").oauth2.token_path(config.archive.path), "gmailish").load()
    assert introspect(oauth_server, grant.access_token)["username"] == "erin"
    assert oauth_server.token_requests == ["authorization_code"]
