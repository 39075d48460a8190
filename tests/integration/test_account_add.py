"""``archiver account add`` end to end: discovery served on loopback points at the real Dovecot sandbox,
the login is tested against it, the account lands in the config file, and that config backs up."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest

from tests.fixtures.archives import archived_hashes
from tests.fixtures.config import parse_config
from tests.fixtures.discovery_servers import Page, autoconfig_xml
from tests.fixtures.mail_server import fill_mailbox, server_hashes

pytestmark = pytest.mark.integration

PATH = "/mail/config-v1.1.xml"
HEAD = "# My archiver config: keep this comment.\n[archive]\npath = {path}  # next to this file\n"


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "archiver.toml"
    path.write_text(HEAD.format(path=json.dumps(str(tmp_path / "archive"))))
    path.chmod(0o600)
    return path


def _add(config, email, web_server, dns_server, dovecot, *extra: str, stdin: str | None = None):
    """Run ``archiver account add`` as a user would, discovery pointed at the loopback servers."""
    command = [sys.executable, "-m", "archiver", "--config", str(config), "account", "add", email,
               "--autoconfig-url", web_server.url(f"{PATH}?emailaddress={email}"),
               "--dns-server", dns_server.address, "--tls-ca-file", str(dovecot.ca_file), *extra]  # fmt: skip
    return subprocess.run(command, input=stdin or "", capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_autoconfig_to_a_backed_up_account(
    dovecot, mail_user, tmp_path, config_file, web_server, dns_server, cli, open_archive
):
    fill_mailbox(dovecot, mail_user, 30, seed=11)
    web_server.pages[PATH] = Page(
        autoconfig_xml(("imap", "localhost", dovecot.imaps_port, "SSL"), username="%EMAILLOCALPART%")
    )
    email = f"{mail_user.name}@mail.test"
    typed = mail_user.password + "\n"
    result = _add(config_file, email, web_server, dns_server, dovecot, "--name", "work", stdin=typed)
    assert result.returncode == 0, result.stderr
    assert f"Logged in to IMAP localhost:{dovecot.imaps_port} (TLS) as {mail_user.name}" in result.stdout
    assert mail_user.password not in result.stdout + result.stderr

    text = config_file.read_text()
    assert text.startswith(HEAD.format(path=json.dumps(str(tmp_path / "archive"))))  # comments kept, text appended
    password_file = tmp_path / "work.password"
    assert password_file.read_text() == mail_user.password + "\n"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert mail_user.password not in text

    backup = cli(config_file, "backup", timeout=300)
    assert backup.returncode == 0, backup.stderr
    config = parse_config(config_file)
    account = config.account("work")
    assert (account.host, account.port, account.security, account.username) == (
        "localhost", dovecot.imaps_port, "tls", mail_user.name,
    )  # fmt: skip
    with open_archive(config) as archive:
        archived = archived_hashes(archive.catalog, "work")
    folders = sorted({folder for folder, _uid in archived})
    assert archived == server_hashes(dovecot, mail_user, folders)
    assert len(archived) == 30


def test_srv_records_and_a_password_command(dovecot, mail_user, tmp_path, config_file, web_server, dns_server):
    dns_server.add("_imaps._tcp.mail.test", "SRV", "0 0 0 .")
    dns_server.add("_imap._tcp.mail.test", "SRV", f"0 1 {dovecot.imap_port} localhost.")
    secret = tmp_path / "secret"
    secret.write_text(mail_user.password)
    result = _add(
        config_file, "someone@mail.test", web_server, dns_server, dovecot,
        "--username", mail_user.name, "--password-command", f"cat {secret}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "from SRV records of mail.test" in result.stdout and "(STARTTLS)" in result.stdout
    account = parse_config(config_file).account("someone-mail.test")
    assert (account.port, account.security, account.password.kind) == (dovecot.imap_port, "starttls", "command")
    assert not (tmp_path / "someone-mail.test.password").exists()


def test_a_refused_login_writes_nothing(dovecot, mail_user, tmp_path, config_file, web_server, dns_server):
    web_server.pages[PATH] = Page(autoconfig_xml(("imap", "localhost", dovecot.imaps_port, "SSL")))
    before = config_file.read_text()
    result = _add(
        config_file, f"{mail_user.name}@mail.test", web_server, dns_server, dovecot,
        "--username", mail_user.name, stdin="not-the-password\n",
    )  # fmt: skip
    assert result.returncode != 0
    assert "login refused" in result.stderr and "Traceback" not in result.stderr
    assert config_file.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archiver.toml"]


def test_plain_text_only_is_refused_and_print_writes_nothing(dovecot, mail_user, config_file, web_server, dns_server):
    web_server.pages[PATH] = Page(autoconfig_xml(("imap", "localhost", dovecot.imap_port, "plain")))
    before = config_file.read_text()
    refused = _add(config_file, "x@mail.test", web_server, dns_server, dovecot, "--print", "--no-login-test")
    assert refused.returncode == 2 and "--allow-plaintext" in refused.stderr
    assert len([line for line in refused.stderr.splitlines() if line.startswith("archiver: error:")]) == 1

    printed = _add(
        config_file, "x@mail.test", web_server, dns_server, dovecot, "--print", "--no-login-test", "--allow-plaintext"
    )
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.count("[[accounts]]") == 1 and 'security = "none"' in printed.stdout
    assert config_file.read_text() == before


def test_an_oauth2_preset_without_a_client_id_says_what_to_pass(config_file, dns_server, web_server, dovecot):
    before = config_file.read_text()
    result = _add(config_file, "someone@gmail.com", web_server, dns_server, dovecot)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("archiver: error:")]
    assert len(errors) == 1 and "gmail signs in with OAuth2: pass --oauth2-client-id" in errors[0]
    assert "--auth password" in errors[0] and "Traceback" not in result.stderr
    assert config_file.read_text() == before
    assert web_server.requests == [] and dns_server.queries == []  # gmail.com is a preset: no lookups


def test_pop3_over_tls_from_srv_records(dovecot, mail_user, tmp_path, config_file, web_server, dns_server):
    dns_server.add("_pop3s._tcp.mail.test", "SRV", f"0 1 {dovecot.pop3s_port} localhost.")
    secret = tmp_path / "secret"
    secret.write_text(mail_user.password)
    result = _add(
        config_file, "someone@mail.test", web_server, dns_server, dovecot, "--protocol", "pop3",
        "--username", mail_user.name, "--password-file", str(secret), "--print",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"Logged in to POP3 localhost:{dovecot.pop3s_port} (TLS)" in result.stderr
    assert f'protocol = "pop3"\nhost = "localhost"\nport = {dovecot.pop3s_port}\nsecurity = "tls"' in result.stdout

    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password")
    refused = _add(
        config_file, "someone@mail.test", web_server, dns_server, dovecot, "--protocol", "pop3",
        "--username", mail_user.name, "--password-file", str(wrong), "--print",
    )  # fmt: skip
    assert refused.returncode != 0 and "[[accounts]]" not in refused.stdout
    assert "not-the-password" not in refused.stdout + refused.stderr


def test_an_oauth2_preset_writes_its_client_and_says_to_run_archiver_auth(
    config_file, tmp_path, dns_server, web_server, dovecot
):
    secret = tmp_path / "client.secret"
    secret.write_text("client-secret")
    secret.chmod(0o600)
    result = _add(
        config_file, "someone@gmail.com", web_server, dns_server, dovecot,
        "--oauth2-client-id", "my-app.apps.googleusercontent.com", "--oauth2-client-secret-file", str(secret),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Next: archiver auth someone-gmail.com" in result.stdout and "Logged in" not in result.stdout
    assert "Note: Folders are labels: [Gmail]/All Mail holds every message once" in result.stdout
    account = parse_config(config_file).account("someone-gmail.com")
    assert (account.host, account.port, account.password) == ("imap.gmail.com", 993, None)
    assert (account.oauth2.provider, account.oauth2.client_id) == ("google", "my-app.apps.googleusercontent.com")
    assert 'provider = "gmail"' in config_file.read_text() and "client-secret" not in config_file.read_text()

    printed = _add(
        config_file, "other@outlook.com", web_server, dns_server, dovecot, "--auth", "password",
        "--password-command", "pass show outlook", "--no-login-test", "--print",
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    assert 'provider = "outlook.com"' in printed.stdout and 'auth = "password"' in printed.stdout
