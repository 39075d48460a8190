"""Server-side sessions (issue 12 item 3): logout, a password change, a revoke and both timeouts end a session."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from archiver.catalog import Catalog
from tests.fixtures.web import WEB_USERS, first_message, form_token, log_in
from web import create_app


def _stolen_cookie(client) -> str:
    """The session cookie as an attacker who copied it would hold it."""
    return client.get_cookie("session").value


def _replay(app, cookie: str, path: str):
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    return thief.get(path)


def test_cookie_copied_before_logout_opens_nothing_after(web_app):
    pid = first_message(web_app)
    client = web_app.test_client()
    assert log_in(client, "bob", "bob-pass").status_code == 302
    copied = _stolen_cookie(client)
    assert _replay(web_app, copied, f"/m/{pid}").status_code == 200  # the copy works while the session lives
    assert client.post("/logout", data={"csrf_token": form_token(client, "/")}).status_code == 302
    for path in (f"/m/{pid}", f"/m/{pid}/raw", "/"):
        response = _replay(web_app, copied, path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), path


def test_responses_do_not_renew_the_cookie(web_app):
    client = web_app.test_client()
    assert log_in(client, "bob", "bob-pass").status_code == 302
    client.get("/")  # the first page sets nothing new either
    response = client.get("/")
    assert response.status_code == 200 and "Set-Cookie" not in response.headers


def test_idle_timeout_and_absolute_lifetime(make_web_app):
    app = make_web_app('session_idle_timeout = "10m"\nsession_lifetime = "1h"')
    store = app.extensions["archiver_sessions"]
    now = [time.time()]
    store.clock = lambda: now[0]
    idle, busy = app.test_client(), app.test_client()
    assert log_in(idle, "bob", "bob-pass").status_code == 302
    assert log_in(busy, "root", "root-pass").status_code == 302
    for _ in range(11):  # busy: a request every 5 minutes for 55 minutes stays logged in
        now[0] += 5 * 60
        assert busy.get("/").status_code == 200
    assert idle.get("/").status_code == 302  # 55 minutes idle > 10 minutes
    now[0] += 5 * 60 + 1  # 60 min 1 s after login: over the absolute lifetime however busy
    assert busy.get("/").status_code == 302


def test_password_change_in_config_ends_sessions(web_app):
    """A restart (or daemon reload) with bob's password_hash changed: his old sessions are dead, root's live."""
    bob, root = web_app.test_client(), web_app.test_client()
    assert log_in(bob, "bob", "bob-pass").status_code == 302
    assert log_in(root, "root", "root-pass").status_code == 302
    config = web_app.extensions["archiver_config"]
    new_hash = PasswordHasher(time_cost=1, memory_cost=8192).hash("new-pass")
    users = tuple(replace(u, password_hash=new_hash) if u.name == "bob" else u for u in config.web.users)
    restarted = create_app(replace(config, web=replace(config.web, users=users)), testing=True)
    try:
        assert _replay(restarted, _stolen_cookie(bob), "/").status_code == 302
        assert _replay(restarted, _stolen_cookie(root), "/").status_code == 200
        assert log_in(restarted.test_client(), "bob", "bob-pass").status_code == 401
        assert log_in(restarted.test_client(), "bob", "new-pass").status_code == 302
    finally:
        restarted.extensions["archiver_archive"].close()
        restarted.extensions["archiver_sessions"].close()


def test_cli_revoke_ends_a_users_sessions(make_web_app, cli):
    app = make_web_app()
    bob, root = app.test_client(), app.test_client()
    assert log_in(bob, "bob", "bob-pass").status_code == 302
    assert log_in(root, "root", "root-pass").status_code == 302
    config_path = app.extensions["archiver_config"].source
    _write_config(app, config_path)
    listed = cli.invoke(config_path, "sessions", "list")
    assert listed.exit_code == 0, listed.output
    assert "bob" in listed.output and "root" in listed.output
    revoked = cli.invoke(config_path, "sessions", "revoke", "bob")
    assert revoked.exit_code == 0 and "1 session" in revoked.output, revoked.output
    assert bob.get("/").status_code == 302
    assert root.get("/").status_code == 200
    unknown = cli.invoke(config_path, "sessions", "revoke", "mallory")
    assert unknown.exit_code == 2 and "Traceback" not in unknown.output
    assert unknown.output.splitlines()[-1].endswith("web.users: no user named 'mallory'")
    everyone = cli.invoke(config_path, "sessions", "revoke", "--all")
    assert everyone.exit_code == 0 and "1 session" in everyone.output
    assert root.get("/").status_code == 302


def test_only_a_hash_of_the_token_is_stored(web_app):
    client = web_app.test_client()
    assert log_in(client, "bob", "bob-pass").status_code == 302
    token = web_app.session_interface.get_signing_serializer(web_app).loads(_stolen_cookie(client))["sid"]
    with Catalog.open(web_app.extensions["archiver_archive"].root) as catalog:
        rows = catalog.web_sessions()
    assert len(rows) == 1 and rows[0]["user"] == "bob"
    assert token not in str([tuple(r) for r in rows])


def _write_config(app, path) -> None:
    """The test app's config as a file, for the CLI (same archive, same users)."""
    config = app.extensions["archiver_config"]
    text = f'[archive]\npath = "{config.archive.path}"\n'
    for account in config.accounts:
        text += f'[[accounts]]\nname = "{account.name}"\nprotocol = "local"\npassword = "x"\n'
    path.write_text(text + WEB_USERS)


def test_session_and_proxy_settings_are_read_and_checked():
    from archiver.config import config_from_toml_text
    from archiver.errors import ConfigError

    base = '[archive]\npath = "/tmp/a"\n[[accounts]]\nname = "alpha"\nprotocol = "local"\n'

    def load(text: str):
        return config_from_toml_text(base + text, Path("/tmp/archiver.toml")).web

    default = load("")
    assert (default.session_idle_timeout, default.session_lifetime, default.trusted_proxy) == (7200, 43200, None)
    web = load('[web]\nsession_idle_timeout = "30m"\nsession_lifetime = 86400\ntrusted_proxy = "::1"\n')
    assert (web.session_idle_timeout, web.session_lifetime, web.trusted_proxy) == (1800, 86400, "::1")
    for line, message in [
        ("session_idle_timeout = 5", "web.session_idle_timeout: expected a duration of at least a minute"),
        ('session_lifetime = "forever"', "web.session_lifetime: expected a duration"),
        ('trusted_proxy = "proxy.lan"', "web.trusted_proxy: expected the IP address the reverse proxy connects"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load(f"[web]\n{line}\n")


def test_sessions_page_admin_ends_a_users_sessions_and_users_only_their_own(web_app):
    bob, other_bob, root = web_app.test_client(), web_app.test_client(), web_app.test_client()
    for client, name in ((bob, "bob"), (other_bob, "bob"), (root, "root")):
        assert log_in(client, name, f"{name}-pass").status_code == 302
    own = bob.get("/sessions").get_data(as_text=True)
    assert own.count("<tr><td>bob</td>") == 2 and "root" not in own.split("<h1>")[1] and "this browser" in own
    refused = bob.post("/sessions/end", data={"user": "root", "csrf_token": form_token(bob, "/sessions")})
    assert refused.status_code == 404 and root.get("/").status_code == 200
    page = root.get("/sessions").get_data(as_text=True)
    assert page.count("<tr><td>bob</td>") == 2 and page.count("<tr><td>root</td>") == 1
    ended = root.post("/sessions/end", data={"user": "bob", "csrf_token": form_token(root, "/sessions")})
    assert ended.status_code == 302
    assert "Ended 2 session(s) of bob." in root.get("/sessions").get_data(as_text=True)
    assert bob.get("/").status_code == 302 and other_bob.get("/").status_code == 302
    assert root.get("/").status_code == 200
    assert web_app.test_client().get("/sessions").status_code == 302  # anonymous: to the login page


def test_cli_without_an_archive_says_so_and_creates_nothing(tmp_path, cli):
    config = tmp_path / "archiver.toml"
    archive = tmp_path / "no-archive"
    config.write_text(f'[archive]\npath = "{archive}"\n[[accounts]]\nname = "a"\nprotocol = "local"\n')
    for args in (["sessions", "list"], ["sessions", "revoke", "--all"]):
        result = cli.invoke(config, *args)
        assert result.exit_code == 1 and f"no archive at {archive}: run a backup first" in result.output, args
    assert not archive.exists()
    usage = cli.invoke(config, "sessions", "revoke")
    assert usage.exit_code == 2 and "name the users whose sessions end, or give --all" in usage.output


def test_login_cookies_are_httponly_samesite_and_secure_over_tls(web_app):
    for base, secure in (("http://localhost", False), ("https://localhost", True)):
        client = web_app.test_client()
        token = form_token(client, f"{base}/login")
        response = client.post(f"{base}/login", data={"username": "bob", "password": "bob-pass", "csrf_token": token})
        cookies = response.headers.getlist("Set-Cookie")
        assert {c.split("=")[0] for c in cookies} == {"session", "archiver_known"}
        for cookie in cookies:
            assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and ("Secure" in cookie) is secure, cookie
