"""Shared fixtures: one real, private Dovecot per session, a fresh mail user per test, the shared corpus,
scripted hostile servers.

The server is session-wide because starting it is cheap but not free; tests stay
independent because each gets its own user (own home, own maildir).
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from archiver.devtools.sandbox import DovecotSandbox
from tests.fixtures.oauth_server import OAuthServer
from tests.hostile.servers import ImapScript, Pop3Script, Running

CORPUS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
MARKERS = {
    "integration": "talks to a real Dovecot started by the test fixture",
    "browser": "drives a real headless Chromium",
    "slow": "takes more than a few seconds (kill trials, big mailboxes)",
}
_user_numbers = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers here too, so the suite runs without pyproject (e.g. from a copied tree)."""
    for name, help_text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {help_text}")


@pytest.fixture(autouse=True)
def _keep_umask() -> Iterator[None]:
    """The CLI narrows the process umask (archiver.permissions); a test invoking it in-process must not
    leave it narrowed for the next (the Dovecot sandbox's files must stay readable by its own user)."""
    umask = os.umask(0o022)
    os.umask(umask)
    yield
    os.umask(umask)


@dataclass(frozen=True)
class MailUser:
    """A Dovecot account that exists for one test only."""

    name: str
    password: str


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
    """Start a scripted misbehaving IMAP/POP3 server (tests/hostile/servers.py) on loopback; stopped after the test."""
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
