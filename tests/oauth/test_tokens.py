"""The refreshing token source and the token file, against the real loopback authorization server."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from archiver.errors import AuthError, AuthorisationExpired, ConfigError, ConnectError, ProtocolError
from archiver.oauth.store import StoredToken, TokenFile
from archiver.oauth.tokens import RefreshingTokenSource
from tests.fixtures.oauth_helpers import ACCOUNT, client_for, introspect, stored_grant
from tests.fixtures.oauth_server import CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, OAuthServer

REVOKED = "account work: the OAuth2 authorisation was revoked or has expired; re-authorise with `archiver auth work`"


def test_a_token_far_from_expiry_is_used_as_stored(oauth_server: OAuthServer, tmp_path: Path) -> None:
    store = stored_grant(oauth_server, tmp_path, lifetime=3600)
    source = RefreshingTokenSource(client_for(oauth_server), store)
    assert source.access_token() == store.load().access_token
    assert oauth_server.token_requests == []


def test_a_token_near_expiry_is_refreshed_first_and_the_new_one_kept(oauth_server: OAuthServer, tmp_path: Path) -> None:
    store = stored_grant(oauth_server, tmp_path, lifetime=120)  # inside the 5-minute margin
    old = store.load()
    source = RefreshingTokenSource(client_for(oauth_server), store)
    token = source.access_token()
    assert token != old.access_token
    assert introspect(oauth_server, token)["username"] == "alice"
    assert source.access_token() == token  # the new one lives an hour: no second refresh
    assert oauth_server.token_requests == ["refresh_token"]
    saved = store.load()  # the rotated refresh token reached the disk: a restart can still refresh
    assert saved.access_token == token and saved.refresh_token != old.refresh_token
    assert RefreshingTokenSource(client_for(oauth_server), store).refused() != token


def test_refused_forces_one_refresh_even_before_expiry(oauth_server: OAuthServer, tmp_path: Path) -> None:
    store = stored_grant(oauth_server, tmp_path, lifetime=3600)
    source = RefreshingTokenSource(client_for(oauth_server), store)
    first = source.access_token()
    second = source.refused()
    assert second != first and introspect(oauth_server, second)["active"] is True
    assert oauth_server.token_requests == ["refresh_token"]
    assert source.access_token() == second


def test_two_processes_sharing_a_rotating_grant_do_not_lock_each_other_out(
    oauth_server: OAuthServer, tmp_path: Path
) -> None:
    """The daemon's run and a manual backup hold the same grant; the provider revokes a refresh token on use."""
    store = stored_grant(oauth_server, tmp_path)
    daemon = RefreshingTokenSource(client_for(oauth_server), TokenFile(store.path, ACCOUNT))
    manual = RefreshingTokenSource(client_for(oauth_server), TokenFile(store.path, ACCOUNT))
    daemon.access_token()
    manual.access_token()  # both hold the same access token and, in memory, the same refresh token
    refreshed = daemon.refused()  # rotates: the refresh token manual read is revoked now
    assert manual.refused() == refreshed  # found on disk under the lock, instead of a refresh with a revoked token
    assert oauth_server.token_requests == ["refresh_token"]
    assert introspect(oauth_server, manual.refused())["active"] is True  # and it can still refresh on its own


def test_a_confidential_client_refreshes_with_its_secret(oauth_server: OAuthServer, tmp_path: Path) -> None:
    store = TokenFile(tmp_path / "t.json", ACCOUNT)
    store.save(StoredToken.from_answer(oauth_server.issue_tokens("bob", client_id=CONFIDENTIAL_CLIENT_ID)))
    token = RefreshingTokenSource(client_for(oauth_server, confidential=True), store).refused()
    assert introspect(oauth_server, token)["username"] == "bob"


def test_a_revoked_grant_is_the_one_clear_line(oauth_server: OAuthServer, tmp_path: Path) -> None:
    store = stored_grant(oauth_server, tmp_path, user="carol")
    source = RefreshingTokenSource(client_for(oauth_server), store)
    oauth_server.revoke_refresh_tokens("carol")
    with pytest.raises(AuthorisationExpired) as caught:
        source.refused()
    assert str(caught.value) == REVOKED
    assert isinstance(caught.value, AuthError)


def test_not_authorised_yet_says_what_to_run(oauth_server: OAuthServer, tmp_path: Path) -> None:
    source = RefreshingTokenSource(client_for(oauth_server), TokenFile(tmp_path / "none.json", ACCOUNT))
    with pytest.raises(AuthError, match=r"not authorised for OAuth2 yet .*run `archiver auth work`"):
        source.access_token()


def test_an_html_error_page_from_the_token_endpoint_is_one_line(oauth_server: OAuthServer, tmp_path: Path) -> None:
    source = RefreshingTokenSource(client_for(oauth_server), stored_grant(oauth_server, tmp_path))
    oauth_server.answer_html_errors(status=502)
    with pytest.raises(ProtocolError) as caught:
        source.refused()
    assert str(caught.value) == (
        "account 'work': refreshing the OAuth2 access token: 127.0.0.1 answered HTTP 502 (an HTML page), "
        "not an OAuth2 answer"
    )
    oauth_server.answer_html_errors(status=200)  # a 200 with a login page instead of JSON
    with pytest.raises(ProtocolError, match="not OAuth2 JSON"):
        source.refused()
    assert source.refused()  # the provider is back: the grant still works


def test_an_unreachable_provider_is_one_line(oauth_server: OAuthServer, tmp_path: Path) -> None:
    store = stored_grant(oauth_server, tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    client = client_for(oauth_server)
    client.endpoints = replace(client.endpoints, token_url=f"http://127.0.0.1:{closed}/t")
    with pytest.raises(ConnectError) as caught:
        RefreshingTokenSource(client, store).refused()
    assert str(caught.value) == "account 'work': refreshing the OAuth2 access token: cannot reach 127.0.0.1"


def test_a_provider_that_never_answers_times_out(oauth_server: OAuthServer, tmp_path: Path) -> None:
    store = stored_grant(oauth_server, tmp_path)
    with socket.socket() as silent:  # accepts connections (the kernel does) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        client = client_for(oauth_server, timeout=0.5)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/token"
        client.endpoints = replace(client.endpoints, token_url=url)
        with pytest.raises(ConnectError, match=r"127\.0\.0\.1 did not answer within 0\.5 s$"):
            RefreshingTokenSource(client, store).refused()


def test_the_token_file_is_private_and_atomic(oauth_server: OAuthServer, tmp_path: Path) -> None:
    store = stored_grant(oauth_server, tmp_path)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    RefreshingTokenSource(client_for(oauth_server), store).refused()
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    names = sorted(p.name for p in store.path.parent.iterdir())
    assert names == ["work.json", "work.json.lock"]  # no temp file left behind; the lock serialises refreshes
    assert json.loads(store.path.read_text())["version"] == 1


def test_a_token_file_readable_by_others_gives_a_warning(
    oauth_server: OAuthServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = stored_grant(oauth_server, tmp_path)
    os.chmod(store.path, 0o644)
    with caplog.at_level(logging.WARNING, logger="archiver"):
        store.load()
    assert [r.getMessage() for r in caplog.records] == [
        f"account 'work': the OAuth2 token file {store.path} is readable by group or others (mode 0644); "
        "run chmod 600 on it"
    ]


def test_a_damaged_token_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "work.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"is not an archiver token file .*run `archiver auth work`"):
        TokenFile(path, ACCOUNT).load()


def test_tokens_reach_no_log_line_no_error_and_no_repr(
    oauth_server: OAuthServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = TokenFile(tmp_path / "work.json", ACCOUNT)
    store.save(StoredToken.from_answer(oauth_server.issue_tokens("alice", client_id=CONFIDENTIAL_CLIENT_ID)))
    secrets = [store.load().refresh_token, store.load().access_token, CONFIDENTIAL_CLIENT_SECRET]
    client = client_for(oauth_server, confidential=True)
    source = RefreshingTokenSource(client, store)
    errors = []
    with caplog.at_level(logging.DEBUG):
        secrets.append(source.refused())
        secrets.append(store.load().refresh_token)
        oauth_server.answer_html_errors()
        with pytest.raises(ProtocolError) as html:
            source.refused()
        errors.append(str(html.value))
        oauth_server.revoke_refresh_tokens("alice")
        with pytest.raises(AuthorisationExpired) as revoked:
            source.refused()
        errors.append(str(revoked.value))
    # the authorization server itself runs in this process and logs what it issues: only the client side counts
    client_lines = [r.getMessage() for r in caplog.records if not r.name.startswith("authlib.oauth2.rfc")]
    assert any("POST /token" in line for line in client_lines)  # the client side's debug lines were captured
    shown = [*errors, *client_lines, repr(source), repr(client), repr(store), repr(store.load()), str(store.load())]
    for secret in filter(None, secrets):
        assert not any(secret in text for text in shown)
