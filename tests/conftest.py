"""Fixtures of every tier: one real, private Dovecot per session, a fresh mail user per test, the shared corpus,
scripted hostile servers, an archive, a config file, the command line, and the web app on a real archive.

The server is session-wide because starting it is cheap but not free; tests stay
independent because each gets its own user (own home, own maildir). The plain
helpers these fixtures use live in ``tests/fixtures/``.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from archiver.archive import Archive
from archiver.devtools.sandbox import DovecotSandbox
from archiver.devtools.seaweed import SeaweedSandbox
from tests.fixtures.archives import ArchiveTarget, OpenArchive, archive_at
from tests.fixtures.cli import Cli
from tests.fixtures.config import ARCHIVE_NAME, write_config
from tests.fixtures.corpus import CORPUS_DIR
from tests.fixtures.hostile_servers import ImapScript, Pop3Script, Running
from tests.fixtures.mail_server import MailUser
from tests.fixtures.oauth_server import OAuthServer
from tests.fixtures.seaweed import needs_weed
from tests.fixtures.web import WEB_USERS
from tests.fixtures.webdata import add_messages, message, web_config
from tests.fixtures.workers import mark_session, wait_for_workers
from web import create_app

MARKERS = {
    "integration": "talks to a real Dovecot started by the test fixture",
    "browser": "drives a real headless Chromium",
    "slow": "takes more than a few seconds (kill trials, big mailboxes)",
    "s3": "talks to a real SeaweedFS (S3) started by the test fixture",
}
_user_numbers = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers here too, so the suite runs without pyproject (e.g. from a copied tree)."""
    for name, help_text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {help_text}")
    mark_session(secrets.token_hex(8))


@pytest.fixture(autouse=True)
def _no_index_worker_left() -> Iterator[None]:
    """A test ends with no index worker of its own running: the ``archiver backup`` it ran returned before its
    background index update finished, so wait for that here (by pid; see tests/fixtures/workers.py)."""
    yield
    killed = wait_for_workers()
    assert not killed, f"index worker(s) {killed} still running 120 s after the test: killed"


@pytest.fixture(autouse=True)
def _keep_umask() -> Iterator[None]:
    """The CLI narrows the process umask (archiver.permissions); a test invoking it in-process must not
    leave it narrowed for the next (the Dovecot sandbox's files must stay readable by its own user)."""
    umask = os.umask(0o022)
    os.umask(umask)
    yield
    os.umask(umask)


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DovecotSandbox]:
    """One Dovecot for the whole session; skipped (not failed) where Dovecot is not installed."""
    if shutil.which("dovecot") is None:
        pytest.skip("Dovecot is not installed (Debian: apt-get install dovecot-imapd dovecot-pop3d)")
    sandbox = DovecotSandbox(tmp_path_factory.mktemp("dovecot"))
    try:
        sandbox.start()
        yield sandbox
    finally:
        sandbox.close()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedSandbox]:
    """One SeaweedFS (S3) for the whole session, stopped by pid; skipped where ``weed`` is not installed.

    Tests share its bucket, each under a prefix of its own (tests/fixtures/seaweed.py).
    """
    needs_weed()
    sandbox = SeaweedSandbox(tmp_path_factory.mktemp("seaweed"))
    try:
        sandbox.start()
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def mail_user(dovecot: DovecotSandbox) -> MailUser:
    """A fresh user with an empty mailbox; the random password keeps tests from leaning on a known one."""
    user = MailUser(f"user{next(_user_numbers)}", f"pw-{secrets.token_hex(6)}")
    dovecot.add_user(user.name, user.password)
    return user


@pytest.fixture
def corpus_dir() -> Path:
    """``../shared/corpus`` next to the repository, or a skip where it is not checked out."""
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS_DIR}")
    return CORPUS_DIR


@pytest.fixture
def hostile_server() -> Iterator[Callable[[ImapScript | Pop3Script], Running]]:
    """Start a scripted misbehaving IMAP/POP3 server (tests/fixtures/hostile_servers.py) on loopback; stopped
    after the test."""
    started: list[Running] = []

    def start(script: ImapScript | Pop3Script) -> Running:
        server = Running(script)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def oauth_server() -> Iterator[OAuthServer]:
    """A real OAuth2 authorization server on loopback (tests/fixtures/oauth_server.py), fresh state per test."""
    server = OAuthServer().start()
    yield server
    server.stop()


@pytest.fixture
def open_archive() -> Iterator[OpenArchive]:
    """``open_archive(target, readonly=False, **settings)``: the archive ``target`` names (its directory, a config
    file, a parsed config or its ``[archive]`` settings), opened, with ``settings`` (``batch_messages=…``) in
    place of the config's; use it as ``with open_archive(config) as archive:``. Whatever a failing test left
    open is closed after it, so the next test's archive is not held by a stray SQLite handle or thread pool."""
    opened: list[Archive] = []

    def open_(target: ArchiveTarget, *, readonly: bool = False, **settings: object) -> Archive:
        archive = archive_at(target, readonly=readonly, **settings)
        opened.append(archive)
        return archive

    yield open_
    for archive in opened:
        archive.close()  # closing twice is harmless: both the catalog and the store allow it


@pytest.fixture
def archive_settings() -> dict[str, object]:
    """``[archive]`` settings other than the defaults for the ``archive`` fixture; a module or test overrides
    this fixture (or parametrizes it) to get ``archive`` with, say, ``{"batch_messages": 2}``."""
    return {}


@pytest.fixture
def archive(tmp_path: Path, open_archive: OpenArchive, archive_settings: dict[str, object]) -> Iterator[Archive]:
    """An empty archive, opened for writing in ``tmp_path/archive`` (where ``config_file`` points) with
    ``archive_settings``, closed after the test."""
    with open_archive(tmp_path / ARCHIVE_NAME, **archive_settings) as opened:
        yield opened


@pytest.fixture
def config_file(tmp_path: Path) -> Callable[..., Path]:
    """``config_file(accounts, archive_extra="", extra="")`` writes ``tmp_path/archiver.toml`` for the given
    ``[[accounts]]`` tables (the archive in ``tmp_path/archive``) and returns its path; again, it rewrites it."""

    def write(accounts: str = "", archive_extra: str = "", extra: str = "") -> Path:
        return write_config(tmp_path, accounts, archive_extra, extra)

    return write


@pytest.fixture
def cli() -> Cli:
    """The archiver command line: ``cli(config, *args)`` in a child process, ``cli.invoke(config, *args)`` in this
    one, ``cli.command(config, *args)`` the argv for a test that starts the process itself."""
    return Cli()


MakeWebApp = Callable[..., Flask]


@pytest.fixture
def make_web_app(tmp_path: Path, open_archive: OpenArchive) -> Iterator[MakeWebApp]:
    """Build the app for ``[web]`` keys ``web`` (TOML lines), users ``users``, and extra ``messages`` in alpha/INBOX."""
    apps: list[Flask] = []

    def make(web: str = "", users: str = WEB_USERS, messages: tuple[bytes, ...] = (), **kwargs: object) -> Flask:
        root = tmp_path / f"app{len(apps)}"
        config = web_config(root, ("[web]\n" + web + "\n" if web else "") + users)
        with open_archive(config) as archive:
            add_messages(archive, "alpha", "INBOX", [message("alpha hello", n=1), *messages])
            add_messages(archive, "beta", "INBOX", [message("beta secret", n=2)])
        app = create_app(config, testing=True, **kwargs)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["archiver_archive"].close()
        app.extensions["archiver_sessions"].close()


@pytest.fixture
def web_app(make_web_app: MakeWebApp) -> Flask:
    return make_web_app()
