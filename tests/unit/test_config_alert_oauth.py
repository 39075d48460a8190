"""OAuth2 settings of the login side (`[alerts.email] oauth2_account`, `oauth2_mechanism`); mistakes are one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.config import config_from_toml_text
from archiver.errors import ConfigError
from archiver.oauth.providers import MICROSOFT_SMTP_SCOPE

SOURCE = Path("/srv/archiver/config.toml")
ACCOUNTS = """
[archive]
path = "/var/lib/archiver"

[[accounts]]
name = "work"
protocol = "imap"
host = "outlook.office365.com"
username = "ops@example.org"
auth = "oauth2"
oauth2_provider = "microsoft"
oauth2_client_id = "app-id-1"

[[accounts]]
name = "home"
protocol = "imap"
host = "imap.example.org"
username = "me@example.org"
password = "pw-1234"
"""


def config(email_keys: str, accounts: str = ACCOUNTS):
    text = f'{accounts}\n[alerts.email]\nto = ["ops@example.org"]\nfrom = "ops@example.org"\n'
    text += f'host = "smtp.office365.com"\n{email_keys}\n'
    return config_from_toml_text(text, SOURCE)


def test_the_accounts_user_is_the_login_and_its_grant_asks_to_send_mail() -> None:
    loaded = config('oauth2_account = "work"')
    assert loaded.alerts.email.oauth2_account == "work"
    assert loaded.alerts.email.username == "ops@example.org"
    assert MICROSOFT_SMTP_SCOPE in loaded.account("work").oauth2.endpoints.scopes  # `archiver auth` asks for it


def test_an_account_not_sending_alerts_does_not_ask_for_the_send_scope() -> None:
    loaded = config("")
    assert MICROSOFT_SMTP_SCOPE not in loaded.account("work").oauth2.endpoints.scopes


def test_an_explicit_username_wins() -> None:
    assert config('oauth2_account = "work"\nusername = "alerts@example.org"').alerts.email.username == (
        "alerts@example.org"
    )


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ('oauth2_account = "nope"', "alerts.email.oauth2_account: no account is named 'nope'"),
        (
            'oauth2_account = "home"',
            "alerts.email.oauth2_account: account 'home' logs in with a password, not auth = \"oauth2\"",
        ),
        (
            'oauth2_account = "work"\nusername = "u"\npassword = "x"',
            "alerts.email.oauth2_account: not used with a password",
        ),
    ],
)
def test_mistakes_are_one_line(keys: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(keys)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_oauth2_mechanism_is_read_and_checked() -> None:
    from archiver.sources.imap import ImapSource

    chosen = config_from_toml_text(ACCOUNTS.replace('oauth2_client_id = "app-id-1"', 'oauth2_client_id = "app-id-1"\n'
                                   'oauth2_mechanism = "xoauth2"'), SOURCE)  # fmt: skip
    assert ImapSource(chosen.account("work")).mechanism == "xoauth2"  # what the login will use
    assert ImapSource(config("").account("work")).mechanism == "auto"
    with pytest.raises(ConfigError, match=r"accounts\[0\]\.oauth2_mechanism: expected one of"):
        config_from_toml_text(
            ACCOUNTS.replace('auth = "oauth2"', 'auth = "oauth2"\noauth2_mechanism = "plain"'), SOURCE
        )
    with pytest.raises(ConfigError, match=r'oauth2_mechanism: only used with auth = "oauth2"'):
        config_from_toml_text(ACCOUNTS.replace('"pw-1234"', '"pw-1234"\noauth2_mechanism = "auto"'), SOURCE)
