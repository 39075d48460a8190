"""The web UI's "Add an account" against the real Dovecot sandbox: discovery served on loopback, the
login tested, the account appended to the config file the app was started with; admins only."""

from __future__ import annotations

import html
import json
import re
import stat

import pytest

from archiver.config import load_config
from tests.fixtures.discovery_servers import Page, autoconfig_xml
from tests.fixtures.web import WEB_USERS, form_token, log_in
from web import close_app, create_app
from web.accounts_add import AUTOCONFIG_KEY, DNS_SERVER_KEY

pytestmark = pytest.mark.integration
PATH = "/mail/config-v1.1.xml"


@pytest.fixture
def app_and_config(tmp_path, web_server, dns_server, dovecot, open_archive):
    config_path = tmp_path / "archiver.toml"
    text = f"# kept as written\n[archive]\npath = {json.dumps(str(tmp_path / 'archive'))}\n"
    text += '[[accounts]]\nname = "alpha"\nprotocol = "local"\n' + WEB_USERS
    config_path.write_text(text)
    config = load_config(config_path)
    with open_archive(config):
        pass
    reloads: list[str] = []
    app = create_app(config, testing=True, reload_config=lambda: reloads.append(config_path.read_text()))
    app.extensions["test_reloads"] = reloads
    app.config[AUTOCONFIG_KEY] = [web_server.url(PATH)]
    app.config[DNS_SERVER_KEY] = dns_server.address
    web_server.pages[PATH] = Page(autoconfig_xml(("imap", "localhost", dovecot.imaps_port, "SSL")))
    yield app, config_path
    close_app(app)


def _hidden(page: str) -> dict[str, str]:
    return {m[0]: html.unescape(m[1]) for m in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page)}


def _find(client, email: str):
    token = form_token(client, "/accounts/add")
    return client.post("/accounts/add/find", data={"email": email, "protocol": "imap", "csrf_token": token})


def test_an_admin_adds_an_account_that_logged_in(app_and_config, dovecot, mail_user, tmp_path):
    app, config_path = app_and_config
    before = config_path.read_text()
    client = app.test_client()
    log_in(client, "root", "root-pass")
    assert "Add an account" in client.get("/").get_data(as_text=True)

    found = _find(client, f"{mail_user.name}@mail.test")
    page = found.get_data(as_text=True)
    assert found.status_code == 200, page
    assert f"Found <strong>IMAP localhost:{dovecot.imaps_port} (TLS)</strong>" in page

    form = {**_hidden(page), "name": "work", "username": mail_user.name, "tls_ca_file": str(dovecot.ca_file)}
    refused = client.post("/accounts/add/save", data={**form, "password": "wrong-password"})
    assert refused.status_code == 422 and "login refused" in refused.get_data(as_text=True)
    assert "wrong-password" not in refused.get_data(as_text=True)
    assert config_path.read_text() == before and not (tmp_path / "work.password").exists()
    assert app.extensions["test_reloads"] == []  # nothing written, nothing to re-read

    saved = client.post("/accounts/add/save", data={**form, "password": mail_user.password})
    assert saved.status_code == 200, saved.get_data(as_text=True)
    assert "Added account <strong>work</strong>" in saved.get_data(as_text=True)
    assert "scheduled and shows in this UI" in saved.get_data(as_text=True)
    assert config_path.read_text().startswith(before)
    assert app.extensions["test_reloads"] == [config_path.read_text()]  # the daemon re-reads it once written
    account = load_config(config_path).account("work")
    assert (account.host, account.port, account.security, account.username) == (
        "localhost", dovecot.imaps_port, "tls", mail_user.name,
    )  # fmt: skip
    assert account.password.resolve() == mail_user.password
    assert stat.S_IMODE((tmp_path / "work.password").stat().st_mode) == 0o600

    again = client.post("/accounts/add/save", data={**form, "password": mail_user.password})
    assert again.status_code == 422 and "duplicate account name" in again.get_data(as_text=True)


def test_only_admins_and_only_the_settings_found(app_and_config, mail_user, web_server):
    app, _config_path = app_and_config
    client = app.test_client()
    log_in(client, "bob", "bob-pass")
    assert client.get("/accounts/add").status_code == 403
    assert "Add an account" not in client.get("/").get_data(as_text=True)

    admin = app.test_client()
    log_in(admin, "root", "root-pass")
    form = _hidden(_find(admin, f"{mail_user.name}@mail.test").get_data(as_text=True))
    altered = {**form, "host": "evil host", "name": "x", "username": "x", "password": "p"}
    assert admin.post("/accounts/add/save", data=altered).status_code == 400

    web_server.pages.clear()
    nothing = _find(admin, "someone@example.invalid")
    assert nothing.status_code == 422 and "found no usable IMAP settings" in nothing.get_data(as_text=True)


def test_an_oauth2_provider_takes_a_client_id_and_no_password(app_and_config):
    app, config_path = app_and_config
    client = app.test_client()
    log_in(client, "root", "root-pass")
    page = _find(client, "someone@contoso.onmicrosoft.com").get_data(as_text=True)
    assert "signs in with OAuth2" in page and 'name="password"' not in page
    form = {**_hidden(page), "name": "m365", "username": "someone@contoso.onmicrosoft.com", "oauth2_client_id": "app"}
    saved = client.post("/accounts/add/save", data=form)
    assert saved.status_code == 200 and "archiver auth m365" in saved.get_data(as_text=True)
    account = load_config(config_path).account("m365")
    assert (account.host, account.oauth2.provider) == ("outlook.office365.com", "microsoft")
    assert account.oauth2.client_id == "app" and account.password is None
