"""Adding an account from a real headless Chromium: the forms work without script, under the app's CSP,
and the account lands in the config file after its login against the Dovecot sandbox succeeded."""

from __future__ import annotations

import json

import pytest

from archiver.config import load_config
from tests.fixtures.browser import require_chromium
from tests.fixtures.discovery_servers import Page, autoconfig_xml
from tests.fixtures.web import WEB_USERS, served
from web import close_app, create_app
from web.accounts_add import AUTOCONFIG_KEY, DNS_SERVER_KEY

pytestmark = [pytest.mark.browser, pytest.mark.integration]
PATH = "/mail/config-v1.1.xml"


@pytest.fixture
def site(tmp_path, web_server, dns_server, dovecot, open_archive):
    require_chromium()

    config_path = tmp_path / "archiver.toml"
    archive = json.dumps(str(tmp_path / "archive"))
    local = '[[accounts]]\nname = "alpha"\nprotocol = "local"\n'
    config_path.write_text(f"[archive]\npath = {archive}\n{local}{WEB_USERS}")
    config = load_config(config_path)
    with open_archive(config):
        pass
    app = create_app(config)
    app.config[AUTOCONFIG_KEY] = [web_server.url(PATH)]
    app.config[DNS_SERVER_KEY] = dns_server.address
    web_server.pages[PATH] = Page(autoconfig_xml(("imap", "localhost", dovecot.imaps_port, "SSL")))
    with served(app) as port:
        yield f"http://127.0.0.1:{port}", config_path
    close_app(app)


def test_an_admin_adds_an_account_in_the_browser(browser, site, dovecot, mail_user):
    base, config_path = site
    context = browser.new_context(java_script_enabled=False)  # the pages must work without any script
    tab = context.new_page()
    try:
        tab.goto(base + "/")
        tab.fill("#username", "root")
        tab.fill("#password", "root-pass")
        tab.click("button[type=submit]")
        tab.click("text=Add an account")
        tab.fill("#email", f"{mail_user.name}@mail.test")
        tab.click("text=Find the settings")
        assert f"IMAP localhost:{dovecot.imaps_port} (TLS)" in tab.locator("main").inner_text()
        tab.fill("#name", "work")
        tab.fill("#username", mail_user.name)
        tab.fill("#password", mail_user.password)
        tab.fill("#tls_ca_file", str(dovecot.ca_file))
        tab.click("text=Test the login and add the account")
        assert "Added account work" in tab.locator("main").inner_text()
    finally:
        context.close()
    account = load_config(config_path).account("work")
    assert (account.host, account.port, account.username) == ("localhost", dovecot.imaps_port, mail_user.name)
