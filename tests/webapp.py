"""Fixtures of the web hardening tests: a real archive (blob store + catalog) and the real Flask app on it.

The conftest.py of tests/unit and tests/integration import the fixtures; test modules only name them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient

from archiver.archive import Archive
from tests.browser.webdata import add_messages, message, web_config
from web import create_app

quick_hash = PasswordHasher(time_cost=1, memory_cost=8192).hash  # test users: cheap argon2id hashes
WEB_USERS = f"""
[[web.users]]
name = "root"
password_hash = "{quick_hash("root-pass")}"
admin = true
[[web.users]]
name = "bob"
password_hash = "{quick_hash("bob-pass")}"
accounts = ["alpha"]
"""

MakeWebApp = Callable[..., Flask]


@pytest.fixture
def make_web_app(tmp_path: Path) -> Iterator[MakeWebApp]:
    """Build the app for ``[web]`` keys ``web`` (TOML lines), users ``users``, and extra ``messages`` in alpha/INBOX."""
    apps: list[Flask] = []

    def make(web: str = "", users: str = WEB_USERS, messages: tuple[bytes, ...] = (), **kwargs: object) -> Flask:
        root = tmp_path / f"app{len(apps)}"
        config = web_config(root, ("[web]\n" + web + "\n" if web else "") + users)
        with Archive(config.archive) as archive:
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


def form_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def log_in(client: FlaskClient, name: str, password: str, next_path: str | None = None, **kwargs: object):
    url = "/login" if next_path is None else f"/login?next={next_path}"
    data = {"username": name, "password": password, "csrf_token": form_token(client)}
    return client.post(url, data=data, **kwargs)


def first_message(app: Flask, account: str = "alpha") -> int:
    catalog = app.extensions["archiver_archive"].catalog
    folder = catalog.web_folders(catalog.account_id(account))[0]
    return catalog.web_folder_page(folder["id"], before=None, limit=1)[0]["id"]
