"""The web app behind a real waitress on loopback: what only a server shows (issue 12 items 4 and 7).

waitress deletes forwarding headers it does not trust before the app sees
them, so a rule tested only with Flask's test client can be dead in
production.  These tests send real HTTP to waitress on 127.0.0.1 (in-process,
and once through ``archiver serve`` as a process).
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.web import WEB_USERS, served

TOKEN = "scrape-token-0123456789"


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_metrics_without_token_refuse_a_local_reverse_proxy(make_web_app):
    with served(make_web_app()) as port:
        assert get(port, "/metrics")[0] == 200  # a local scraper, straight to the app
        for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
            value = "for=192.0.2.7" if header == "Forwarded" else "192.0.2.7"
            status, body = get(port, "/metrics", {header: value})  # nginx/caddy on the same host
            assert status == 403 and "set [metrics] token" in body, header


def test_metrics_need_the_token_when_listening_beyond_loopback(make_web_app):
    app = make_web_app(listen="0.0.0.0:8080")  # as `serve --listen 0.0.0.0:8080` (bound to loopback here)
    with served(app) as port:
        assert get(port, "/metrics")[0] == 403


def test_metrics_need_the_token_behind_a_trusted_proxy(make_web_app):
    app = make_web_app(f'trusted_proxy = "127.0.0.1"\n[metrics]\ntoken = "{TOKEN}"')
    open_app = make_web_app('trusted_proxy = "127.0.0.1"')
    with served(open_app) as port:
        assert get(port, "/metrics")[0] == 403  # even with no forwarding header: the proxy may send none
    with served(app) as port:
        assert get(port, "/metrics", {"X-Forwarded-For": "192.0.2.7"})[0] == 401
        status, body = get(port, "/metrics", {"X-Forwarded-For": "192.0.2.7", "Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and "archiver_account_messages" in body


def post_login(port: int, name: str, password: str, client: str | None) -> int:
    """One login as a browser behind the proxy at ``client``'s address (None: straight to the app)."""
    forwarded = {"X-Forwarded-For": client} if client else {}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/login", headers=forwarded)
        response = connection.getresponse()
        page = response.read().decode()
        cookie = response.getheader("Set-Cookie").split(";")[0]
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        body = f"username={name}&password={password}&csrf_token={token}"
        headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded", **forwarded}
        connection.request("POST", "/login", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_login_back_off_sees_real_clients_behind_a_trusted_proxy(make_web_app):
    app = make_web_app('trusted_proxy = "127.0.0.1"')
    with served(app) as port:
        for i in range(20):  # one client behind the proxy tries 20 names
            assert post_login(port, f"user{i}", "guess", "203.0.113.9") == 401
        assert post_login(port, "root", "root-pass", "203.0.113.9") == 429  # that client waits
        assert post_login(port, "root", "root-pass", "198.51.100.7") == 302  # another client does not


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_archiver_serve_process_applies_the_proxy_rules(make_web_app, tmp_path, cli):
    app = make_web_app()
    archive_path = app.extensions["archiver_config"].archive.path
    config = tmp_path / "serve.toml"
    config.write_text(
        f'[archive]\npath = "{archive_path}"\n[[accounts]]\nname = "alpha"\nprotocol = "local"\n[web]\n{WEB_USERS}'
    )
    config.chmod(0o600)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen(
        cli.command(config, "serve", "--listen", f"127.0.0.1:{port}"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = get(port, "/metrics")
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "archiver serve did not start"
                time.sleep(0.2)
        assert status == 200
        assert get(port, "/metrics", {"X-Forwarded-For": "192.0.2.7"})[0] == 403
        assert get(port, "/m/99999999999999999999")[0] == 404  # no such route, not a 500
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)
    assert b"Traceback" not in process.stderr.read()


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("listen", "loopback"),
    [("127.0.0.1:8080", True), ("127.1.2.3:80", True), ("localhost:8080", True), ("[::1]:8080", True),
     ("0.0.0.0:8080", False), ("[::]:8080", False), ("192.168.1.5:8080", False), ("archive.lan:8080", False)],
)  # fmt: skip
def test_which_listen_addresses_count_as_loopback(listen, loopback):
    from web.serving import loopback_listen

    assert loopback_listen(listen) is loopback
