"""The loopback PKCE flow of `archiver auth` completed by a real headless Chromium on the test server's consent page.

The flow prints a URL and waits on 127.0.0.1; the browser opens that URL,
the user presses Approve (or Deny) on the authorization server's page, the
server redirects the browser back to the flow, which exchanges the code with
its PKCE verifier.  What the user sees at the end and what the token is good
for (the server's introspection, as Dovecot asks it) are asserted.
"""

from __future__ import annotations

from typing import Any

import pytest

from archiver.errors import AuthError
from archiver.oauth.loopback import loopback_flow
from tests.fixtures.browser import require_chromium
from tests.fixtures.oauth_helpers import FlowInThread, client_for, introspect
from tests.fixtures.oauth_server import OAuthServer

require_chromium()
pytestmark = pytest.mark.browser


def click_on_consent(browser: Any, url: str, button: str, username: str | None = None) -> str:
    """Open ``url``, maybe change the user name, press ``button``; the text of the page the browser lands on."""
    context = browser.new_context()
    try:
        tab = context.new_page()
        tab.goto(url)
        assert "asks to read your mail" in tab.inner_text("body")
        if username:
            tab.fill("input[name=username]", username)
        tab.click(f"text={button}")
        tab.wait_for_url("http://127.0.0.1:*/?*")
        return tab.inner_text("body")
    finally:
        context.close()


def test_approving_in_the_browser_gives_a_working_token(browser: Any, oauth_server: OAuthServer) -> None:
    flow = FlowInThread(lambda say: loopback_flow(client_for(oauth_server), say, timeout=60))
    landed = click_on_consent(browser, flow.url(), "Approve", username="heidi")
    assert "You can close this tab." in landed
    token = flow.finish()
    answer = introspect(oauth_server, token.access_token or "")
    assert (answer["active"], answer["username"]) == (True, "heidi")
    assert oauth_server.token_requests == ["authorization_code"]


def test_denying_in_the_browser_is_one_line(browser: Any, oauth_server: OAuthServer) -> None:
    flow = FlowInThread(lambda say: loopback_flow(client_for(oauth_server), say, timeout=60))
    landed = click_on_consent(browser, flow.url(), "Deny")
    assert "The authorisation was refused." in landed
    with pytest.raises(AuthError) as caught:
        flow.finish()
    assert str(caught.value) == "account 'work': the authorisation was denied in the browser"
    assert oauth_server.token_requests == []
