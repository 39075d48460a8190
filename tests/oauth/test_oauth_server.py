"""The test authorization server's Dovecot-facing contract, which the IMAP/POP3 OAuth2 tests build on.

Dovecot 2.3's oauth2 passdb asks one of three ways (introspection_mode post, auth, get); each must say
``active`` and the mail user's name for a live token, and nothing usable for a dead one.
"""

from __future__ import annotations

import requests

from tests.fixtures.oauth_helpers import introspect
from tests.fixtures.oauth_server import DOVECOT_CLIENT_ID, DOVECOT_CLIENT_SECRET, PUBLIC_CLIENT_ID, OAuthServer


def test_each_introspection_mode_names_the_user_of_a_live_token(oauth_server: OAuthServer) -> None:
    token = oauth_server.issue_tokens("kate")["access_token"]
    assert introspect(oauth_server, token)["username"] == "kate"  # post, as dovecot_settings() configures
    auth = requests.get(f"{oauth_server.base_url}/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    get = requests.get(f"{oauth_server.base_url}/tokeninfo", params={"access_token": token}, timeout=10)
    for answer in (auth, get):
        assert answer.status_code == 200 and answer.json()["username"] == "kate" and answer.json()["active"] is True
    oauth_server.set_token_user(token, "leo")
    assert introspect(oauth_server, token)["username"] == "leo"


def test_dead_tokens_are_inactive(oauth_server: OAuthServer) -> None:
    expired = oauth_server.issue_tokens("mia", lifetime=0)["access_token"]
    revoked = oauth_server.issue_tokens("ned")["access_token"]
    oauth_server.revoke_refresh_tokens("ned")
    for token in (expired, revoked, "never-issued"):
        assert introspect(oauth_server, token) == {"active": False}
        answer = requests.get(
            f"{oauth_server.base_url}/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert answer.status_code == 401
    assert oauth_server.introspections.count("inactive") == 6


def test_only_the_resource_server_may_introspect(oauth_server: OAuthServer) -> None:
    token = oauth_server.issue_tokens("olga")["access_token"]
    anonymous = requests.post(
        oauth_server.introspect_url, data={"token": token, "client_id": PUBLIC_CLIENT_ID}, timeout=10
    )
    wrong = requests.post(
        oauth_server.introspect_url, data={"token": token}, auth=(DOVECOT_CLIENT_ID, "nope"), timeout=10
    )
    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    settings = oauth_server.dovecot_settings()
    assert f"introspection_url = http://{DOVECOT_CLIENT_ID}:{DOVECOT_CLIENT_SECRET}@127.0.0.1:" in settings
