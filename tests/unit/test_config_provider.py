"""``provider = "NAME"`` on an account: the preset fills what the table leaves out; what it says wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.config import config_from_toml_text
from archiver.discovery.presets import PRESETS
from archiver.errors import ConfigError


def _account(body: str, tmp_path: Path):
    text = f'[archive]\npath = "archive"\n\n[[accounts]]\nname = "a"\nusername = "me@example.test"\n{body}\n'
    return config_from_toml_text(text, tmp_path / "config.toml").accounts[0]


def test_a_preset_fills_host_port_security_and_protocol(tmp_path):
    account = _account('provider = "yahoo"\npassword_env = "PW"', tmp_path)
    assert (account.protocol, account.host, account.port, account.security) == (
        "imap", "imap.mail.yahoo.com", 993, "tls",
    )  # fmt: skip
    pop = _account('provider = "yahoo"\nprotocol = "pop3"\npassword_env = "PW"', tmp_path)
    assert (pop.host, pop.port, pop.security) == ("pop.mail.yahoo.com", 995, "tls")
    assert account.provider == "yahoo"


def test_explicit_keys_win_over_the_preset(tmp_path):
    moved = _account('provider = "free"\nhost = "imap2.free.fr"\npassword_env = "PW"', tmp_path)
    assert (moved.host, moved.port, moved.security) == ("imap2.free.fr", 993, "tls")
    ported = _account('provider = "free"\nport = 1993\npassword_env = "PW"', tmp_path)
    assert (ported.host, ported.port) == ("imap.free.fr", 1993)
    # another security than the preset's: the port follows that security unless given too
    upgraded = _account('provider = "gmx"\nsecurity = "starttls"\npassword_env = "PW"', tmp_path)
    assert (upgraded.host, upgraded.port, upgraded.security) == ("imap.gmx.net", 143, "starttls")


def test_a_provider_without_that_protocol_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as caught:
        _account('provider = "icloud"\nprotocol = "pop3"\npassword_env = "PW"', tmp_path)
    assert "accounts[0].provider: iCloud Mail offers no POP3 server" in str(caught.value)
    # unless the table names the server itself
    own = _account('provider = "icloud"\nprotocol = "pop3"\nhost = "pop.example.test"\npassword_env = "PW"', tmp_path)
    assert (own.host, own.port) == ("pop.example.test", 995)


def test_an_unknown_provider_lists_the_known_ones_with_a_did_you_mean(tmp_path):
    with pytest.raises(ConfigError) as caught:
        _account('provider = "yahooo"\npassword_env = "PW"', tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'config.toml'}: accounts[0].provider: unknown provider 'yahooo'")
    assert 'did you mean "yahoo"?' in message
    assert all(f'"{name}"' in message for name in PRESETS) and "\n" not in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("provider = 3", "accounts[0].provider: expected a non-empty string, got 3"),
        ('provider = "gmail"\nprotocol = "local"', 'accounts[0].provider: not for protocol "local"'),
    ],
)
def test_a_bad_provider_value_is_one_line(tmp_path, body, expected):
    with pytest.raises(ConfigError) as caught:
        _account(body + '\npassword_env = "PW"', tmp_path)
    assert expected in str(caught.value)


def test_without_a_provider_nothing_changes(tmp_path):
    account = _account('protocol = "imap"\nhost = "mail.example.test"\npassword_env = "PW"', tmp_path)
    assert (account.port, account.security, account.provider) == (993, "tls", None)


def test_an_oauth2_preset_means_oauth2_with_its_provider(tmp_path):
    microsoft = _account('provider = "microsoft365"\noauth2_client_id = "app-id"', tmp_path)
    assert (microsoft.host, microsoft.port, microsoft.password) == ("outlook.office365.com", 993, None)
    assert (microsoft.oauth2.provider, microsoft.oauth2.client_id) == ("microsoft", "app-id")

    google = _account('provider = "gmail"\noauth2_client_id = "id"\noauth2_client_secret_env = "SECRET"', tmp_path)
    assert (google.host, google.oauth2.provider) == ("imap.gmail.com", "google")

    app_password = _account('provider = "gmail"\nauth = "password"\npassword_env = "PW"', tmp_path)
    assert (app_password.host, app_password.oauth2, app_password.password.kind) == ("imap.gmail.com", None, "env")


def test_a_password_on_an_oauth2_preset_says_how_to_use_an_app_password(tmp_path):
    with pytest.raises(ConfigError) as caught:
        _account('provider = "gmail"\noauth2_client_id = "id"\npassword_env = "PW"', tmp_path)
    message = str(caught.value)
    assert 'accounts[0].password_env: provider "gmail" signs in with OAuth2; add auth = "password"' in message
    with pytest.raises(ConfigError, match="oauth2_client_id: missing"):
        _account('provider = "outlook.com"', tmp_path)


def test_alert_mail_can_name_a_provider_for_its_smtp_server(tmp_path):
    def email(body: str):
        head = '[archive]\npath = "archive"\n[alerts.email]\nto = ["ops@example.test"]\nfrom = "a@example.test"\n'
        text = f"{head}{body}\n"
        return config_from_toml_text(text, tmp_path / "config.toml").alerts.email

    fastmail = email('provider = "fastmail"\nusername = "me@fastmail.com"\npassword_env = "PW"')
    assert (fastmail.host, fastmail.port, fastmail.security) == ("smtp.fastmail.com", 465, "tls")
    outlook = email('provider = "outlook.com"')
    assert (outlook.host, outlook.port, outlook.security) == ("smtp-mail.outlook.com", 587, "starttls")
    moved = email('provider = "fastmail"\nsecurity = "starttls"')
    assert (moved.host, moved.port) == ("smtp.fastmail.com", 587)
    with pytest.raises(ConfigError, match=r"alerts\.email\.provider: unknown provider 'fastmial'"):
        email('provider = "fastmial"')
