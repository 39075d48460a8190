"""Fixtures of the browser tests: the web app served by waitress on loopback, a "remote" host recording what a
page asks of it, a Dovecot user to restore into, and a headless Chromium with a signed-in page."""

from __future__ import annotations

import http.server
import secrets
import threading
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher

from archiver import index
from tests.fixtures.archives import archive_at
from tests.fixtures.browser import CHROMIUM, FLAGS
from tests.fixtures.discovery_servers import dns_server, web_server  # noqa: F401 (fixtures, used by name)
from tests.fixtures.mail_server import account_toml
from tests.fixtures.web import served
from tests.fixtures.webdata import add_messages, hostile_message, message, web_config
from web import create_app


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every request with an empty image and notes it in ``server.requests``."""

    server: RecordingServer

    def _record(self) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    do_GET = do_POST = _record

    def log_message(self, *args: object) -> None:
        pass


class RecordingServer(http.server.ThreadingHTTPServer):
    requests: list[str]


@pytest.fixture(scope="module")
def recorder() -> Iterator[RecordingServer]:
    """A "remote" host on loopback that records every request a page sends it (``recorder.requests``)."""
    server = RecordingServer(("127.0.0.1", 0), _Recorder)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def mailbox(dovecot):
    """A Dovecot user of this module: the restore target (and a real account to back up)."""

    class User:
        name = f"webuser{secrets.token_hex(3)}"
        password = f"pw-{secrets.token_hex(6)}"

    dovecot.add_user(User.name, User.password)
    return User


@pytest.fixture(scope="module")
def site(tmp_path_factory, recorder, dovecot, mailbox):
    root = tmp_path_factory.mktemp("web")
    users = f'[[web.users]]\nname = "root"\npassword_hash = "{PasswordHasher().hash("root-pass")}"\nadmin = true\n'
    config = web_config(root, users, extra_accounts=account_toml(dovecot, mailbox, name="mailbox"))
    remote = f"127.0.0.1:{recorder.server_address[1]}"
    with archive_at(config) as archive:
        add_messages(archive, "alpha", "INBOX", [message(f"Quarterly report {i}", f"numbers walrus{i}", n=i)
                                                 for i in range(60)])  # fmt: skip
        add_messages(archive, "alpha", "Hostile", [hostile_message(remote)])
        add_messages(archive, "beta", "Archive/2023", [message("Old invoice", "invoice pelican", n=99)])
        index.update_index(archive)
    app = create_app(config)
    with served(app) as port:
        yield f"http://127.0.0.1:{port}", app
    app.extensions["archiver_archive"].close()


@pytest.fixture(scope="module")
def browser():
    # Imported here: the conftest stays importable where Playwright is not installed (the tests skip then).
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, site):
    base, _ = site
    context = browser.new_context(viewport={"width": 1100, "height": 800}, locale="en-GB", timezone_id="Europe/Paris")
    tab = context.new_page()
    tab.goto(base + "/")
    tab.fill("#username", "root")
    tab.fill("#password", "root-pass")
    tab.click("button[type=submit]")
    tab.wait_for_url(base + "/")
    yield tab
    context.close()
