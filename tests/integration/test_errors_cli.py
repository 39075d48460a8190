"""Bad input gets one clear line and a non-zero exit, never a traceback or a secret."""

from __future__ import annotations

import socket

import pytest

from tests.fixtures.cli import assert_one_clear_line
from tests.fixtures.mail_server import account_toml

pytestmark = pytest.mark.integration


def test_wrong_password(dovecot, mail_user, tmp_path, config_file, cli):
    secret = "Wr0ng-Pa55word-xyz"
    path = config_file(account_toml(dovecot, mail_user, password=secret))
    result = cli(path, "backup")
    text = assert_one_clear_line(result, "login refused", mail_user.name)
    assert secret not in result.stderr + result.stdout
    assert text.count("\n") <= 1
    # the failure is recorded on the run, and status shows it
    status = cli(path, "status")
    assert "login refused" in status.stdout
    assert secret not in status.stdout


def test_closed_port(tmp_path, dovecot, mail_user, config_file, cli):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    toml = account_toml(dovecot, mail_user).replace(f"port = {dovecot.imap_port}", f"port = {port}")
    result = cli(config_file(toml), "backup")
    assert_one_clear_line(result, "connection refused", f"127.0.0.1:{port}")


def test_untrusted_certificate(dovecot, mail_user, tmp_path, config_file, cli):
    toml = account_toml(dovecot, mail_user, security="tls").replace(f'tls_ca_file = "{dovecot.ca_file}"\n', "")
    result = cli(config_file(toml), "backup")
    assert_one_clear_line(result, "certificate", "not trusted", "tls_ca_file")


def test_tls_verify_false_accepts_self_signed(dovecot, mail_user, tmp_path, config_file, cli):
    toml = account_toml(dovecot, mail_user, security="tls").replace(
        f'tls_ca_file = "{dovecot.ca_file}"\n', "tls_verify = false\n"
    )
    result = cli(config_file(toml), "backup")
    assert result.returncode == 0, result.stderr


def test_bad_config_names_the_key(tmp_path, cli):
    path = tmp_path / "bad.toml"
    path.write_text(
        '[archive]\npath = "x"\n\n[[accounts]]\nname = "a"\nprotocol = "imap"\nhost = "h"\n'
        'port = "abc"\nusername = "u"\npassword = "p"\n'
    )
    path.chmod(0o600)
    result = cli(path, "backup")
    assert_one_clear_line(result, "accounts[0].port", "expected an integer", "abc")
    assert result.returncode == 2


def test_unknown_key_is_an_error(tmp_path, cli):
    path = tmp_path / "typo.toml"
    path.write_text(
        '[archive]\npath = "x"\n\n[[accounts]]\nname = "a"\nprotocol = "imap"\nhost = "h"\n'
        'username = "u"\npasword = "p"\n'
    )
    result = cli(path, "status")
    assert_one_clear_line(result, "pasword")


def test_missing_config_file(tmp_path, cli):
    result = cli(tmp_path / "nope.toml", "status")
    assert_one_clear_line(result, "nope.toml")


def test_world_readable_config_with_password_warns(dovecot, mail_user, tmp_path, config_file, cli):
    path = config_file(account_toml(dovecot, mail_user))
    path.chmod(0o644)
    result = cli(path, "status")
    assert result.returncode == 0
    assert "warning" in result.stderr.lower() and "readable" in result.stderr.lower()
