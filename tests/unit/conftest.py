"""Fixtures of the unit tests: the web app on a real archive, signed-in clients, the ``/metrics`` app.

The archive, config file, CLI and plain web app fixtures are in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from archiver import index
from archiver.catalog.schedule_state import save_finished, save_next_run
from archiver.times import utc_now
from tests.fixtures.archives import OpenArchive
from tests.fixtures.web import WEB_USERS, login, quick_hash
from tests.fixtures.webdata import add_messages, closed_imap_account, hostile_message, message, web_config
from web import create_app

#: The web users of the ``app`` fixture: root (admin), bob (alpha), carol (alpha and gamma, a closed IMAP port).
USERS = (
    WEB_USERS
    + f"""[[web.users]]
name = "carol"
password_hash = "{quick_hash("carol-pass")}"
accounts = ["alpha", "gamma"]
"""
)


@pytest.fixture
def app(tmp_path: Path, open_archive: OpenArchive) -> Iterator[Flask]:
    """The web app on an indexed archive: 120 messages in alpha/INBOX, a hostile one in alpha/Lists/Hostile,
    one in beta/INBOX."""
    config = web_config(tmp_path, USERS, extra_accounts=closed_imap_account("gamma"))
    with open_archive(config) as archive:
        add_messages(
            archive, "alpha", "INBOX", [message(f"alpha message {i}", f"body zebra{i}", n=i) for i in range(120)]
        )
        add_messages(archive, "alpha", "Lists/Hostile", [hostile_message("127.0.0.1:9")])
        add_messages(archive, "beta", "INBOX", [message("beta secret plans", "body quokka", n=500)])
        index.update_index(archive)
    application = create_app(config, testing=True)
    yield application
    application.extensions["archiver_archive"].close()


@pytest.fixture
def bob(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert login(client, "bob", "bob-pass").status_code == 302
    return client


@pytest.fixture
def root(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert login(client, "root", "root-pass").status_code == 302
    return client


@pytest.fixture
def make_metrics_app(tmp_path: Path, open_archive: OpenArchive) -> Callable[[str], Flask]:
    """``make_metrics_app(metrics_toml)``: the app on an archive with 7 messages in alpha, a failed run of beta
    and schedule state, for the ``[metrics]`` table given; the test closes the app's archive."""

    def make(metrics_toml: str) -> Flask:
        config = web_config(tmp_path, metrics_toml)
        with open_archive(config) as archive:
            add_messages(archive, "alpha", "INBOX", [message(f"m{i}", n=i) for i in range(7)])
            catalog = archive.catalog
            failed = catalog.start_run(catalog.ensure_account("beta", "local"))
            catalog.record_error(failed, None, "beta: login refused")
            catalog.finish_run(failed, "failed", 0, 0, 0)
            save_next_run(catalog, "alpha", "every 6h", utc_now() + timedelta(hours=1))
            save_finished(catalog, "beta", "failed", failed, failing=True)
        return create_app(config, testing=True)

    return make
