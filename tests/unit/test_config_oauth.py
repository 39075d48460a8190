"""The OAuth2 keys of an account: what they build, and the one line each mistake gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.config import PasswordSource, config_from_toml_text
from archiver.errors import ConfigError
from archiver.oauth.tokens import CommandTokenSource, RefreshingTokenSource

SOURCE = Path("/srv/archiver/config.toml")
MICROSOFT = {"auth": '"oauth2"', "oauth2_provider": '"microsoft"', "oauth2_client_id": '"app-id-1"'}


def account(**keys: str) -> str:
    """An IMAP account with ``keys`` (a value of "" removes the key)."""
    base = {"name": '"work"', "protocol": '"imap"', "host": '"outlook.office365.com"', "username": '"a@example.org"'}
    body = "\n".join(f"{k} = {v}" for k, v in {**base, **keys}.items() if v != "")
    return f'[archive]\npath = "/var/lib/archiver"\n\n[[accounts]]\n{body}\n'


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        config_from_toml_text(text, SOURCE)
    return str(caught.value)


def test_password_stays_the_default() -> None:
    work = config_from_toml_text(account(password='"pw-1234"'), SOURCE).accounts[0]
    assert work.oauth2 is None and work.password is not None


def test_microsoft_device_flow_account() -> None:
    work = config_from_toml_text(account(**MICROSOFT, oauth2_tenant='"organizations"'), SOURCE).accounts[0]
    assert work.password is None and work.oauth2 is not None
    oauth = work.oauth2
    assert oauth.endpoints is not None
    assert oauth.endpoints.device_url == "https://login.microsoftonline.com/organizations/oauth2/v2.0/devicecode"
    assert oauth.endpoints.scopes == ("https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access")
    assert oauth.token_path(Path("/var/lib/archiver")) == Path("/var/lib/archiver/oauth/work.json")
    source = oauth.token_source(Path("/var/lib/archiver"))
    assert isinstance(source, RefreshingTokenSource)


def test_google_with_a_secret_file_and_a_token_file() -> None:
    work = config_from_toml_text(
        account(auth='"oauth2"', oauth2_provider='"google"', oauth2_client_id='"123.apps.googleusercontent.com"',
                oauth2_client_secret_file='"google.secret"', oauth2_token_file='"tokens/work.json"'),
        SOURCE,
    ).accounts[0]  # fmt: skip
    assert work.oauth2 is not None
    assert work.oauth2.client_secret == PasswordSource(
        "file", file=Path("/srv/archiver/google.secret"), account="work", key="accounts[0].oauth2_client_secret_file"
    )
    assert work.oauth2.token_path(Path("/elsewhere")) == Path("/srv/archiver/tokens/work.json")


def test_token_command_account() -> None:
    work = config_from_toml_text(account(auth='"oauth2"', token_command='"oauth-helper --account work"'), SOURCE)
    oauth = work.accounts[0].oauth2
    assert oauth is not None
    source = oauth.token_source(Path("/var/lib/archiver"))
    assert isinstance(source, CommandTokenSource) and source.argv == ["oauth-helper", "--account", "work"]


def test_custom_provider_takes_its_endpoints_from_the_config() -> None:
    work = config_from_toml_text(
        account(auth='"oauth2"', oauth2_provider='"custom"', oauth2_client_id='"c"', oauth2_scopes='["mail"]',
                oauth2_token_url='"http://127.0.0.1:8080/token"', oauth2_device_url='"http://127.0.0.1:8080/dev"'),
        SOURCE,
    ).accounts[0]  # fmt: skip
    assert work.oauth2 is not None and work.oauth2.endpoints is not None
    assert (work.oauth2.endpoints.scope, work.oauth2.endpoints.default_flow) == ("mail", "device")


P = "/srv/archiver/config.toml: accounts[0]"


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"auth": '"oauth"'},
         f'{P}.auth: expected one of "password", "oauth2", got "oauth"; did you mean "oauth2"?'),
        ({"auth": '"oauth2"', "oauth2_provider": '"gogle"', "oauth2_client_id": '"x"'},
         f'{P}.oauth2_provider: expected one of "google", "microsoft", "custom", got "gogle"; did you mean "google"?'),
        ({"auth": '"oauth2"', "oauth2_provider": '"microsoft"'},
         f'{P}.oauth2_client_id: missing: auth = "oauth2" needs the client id of the application you registered '
         "with the provider"),
        ({"auth": '"oauth2"', "oauth2_provider": '"google"', "oauth2_client_id": '"x"'},
         f"{P}: provider 'google' also needs the client secret: one of oauth2_client_secret, "
         "oauth2_client_secret_file, oauth2_client_secret_command, oauth2_client_secret_env"),
        ({**MICROSOFT, "password": '"pw-1234"'},
         f'{P}.password: not used with auth = "oauth2" (the login presents an OAuth2 token); remove it'),
        ({"password": '"pw-1234"', "oauth2_client_id": '"x"'},
         f'{P}.oauth2_client_id: only used with auth = "oauth2"; this account logs in with a password'),
        ({"auth": '"oauth2"', "token_command": '"helper"', "oauth2_provider": '"google"'},
         f"{P}.oauth2_provider: not used with token_command (the command provides the access token)"),
        ({"auth": '"oauth2"', "token_command": "\"helper 'unclosed\""},
         f"{P}.token_command: expected a command line split like a shell's (no shell is run), got \"helper "
         "'unclosed\" (No closing quotation)"),
        ({**MICROSOFT, "oauth2_tenant": '"a b"'},
         f"{P}: oauth2_tenant 'a b' is not a tenant: expected common, consumers, organizations, a directory id "
         "or a domain"),
        ({"auth": '"oauth2"', "oauth2_provider": '"custom"', "oauth2_client_id": '"x"'},
         f"{P}: OAuth2 provider 'custom' needs oauth2_token_url"),
        ({"auth": '"oauth2"', "oauth2_provider": '"custom"', "oauth2_client_id": '"x"',
          "oauth2_token_url": '"http://idp.example.org/token"', "oauth2_device_url": '"https://idp.example.org/d"'},
         f'{P}.oauth2_token_url: expected an https:// URL (http:// only to 127.0.0.1 or localhost), '
         'got "http://idp.example.org/token"'),
        ({**MICROSOFT, "oauth2_client_secret": '"s1"', "oauth2_client_secret_env": '"S"'},
         f"{P}: expected exactly one of oauth2_client_secret, oauth2_client_secret_file, "
         "oauth2_client_secret_command, oauth2_client_secret_env, got 2 (oauth2_client_secret, "
         "oauth2_client_secret_env)"),
        ({**MICROSOFT, "oauth2_scope": '["x"]'},
         f"{P}.oauth2_scope: unknown key (did you mean 'oauth2_scopes'?)"),
    ],
)  # fmt: skip
def test_each_mistake_is_one_line(keys: dict[str, str], expected: str) -> None:
    message = error_of(account(**keys))
    assert message.startswith(expected), message
    assert "\n" not in message


def test_a_client_secret_never_shows_in_an_error() -> None:
    message = error_of(account(**MICROSOFT, oauth2_client_secret="42"))
    assert message.endswith("oauth2_client_secret: expected a non-empty string, got a number")


def test_password_accounts_do_not_pay_for_the_oauth2_libraries() -> None:
    """authlib and requests cost about 0.2 s to import: only an OAuth2 account's login or `archiver auth` loads them."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom archiver.cli import main\nfrom archiver.config import config_from_toml_text\n"
        "from pathlib import Path\n"
        f"config_from_toml_text({account(**MICROSOFT)!r}, Path('/x/c.toml'))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('authlib', 'requests')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_client_secrets_readable_by_others_warn_like_passwords(tmp_path: Path) -> None:
    from archiver.config import load_config

    secret_file = tmp_path / "google.secret"
    secret_file.write_text("GOCSPX-secret\n")
    secret_file.chmod(0o644)
    google = {"auth": '"oauth2"', "oauth2_provider": '"google"', "oauth2_client_id": '"x"'}
    path = tmp_path / "config.toml"
    path.write_text(account(**google, oauth2_client_secret='"GOCSPX-literal"'))
    path.chmod(0o644)
    assert load_config(path).warnings == (
        f"{path}: holds a literal password (accounts[0].oauth2_client_secret) but is accessible by group or others "
        "(mode 0644); run chmod 600 on it, or use password_file, password_command or password_env",
    )
    path.write_text(account(**google, oauth2_client_secret_file=f'"{secret_file}"'))
    assert load_config(path).warnings == (
        f"{path}: accounts[0].oauth2_client_secret_file: {secret_file} is accessible by group or others (mode 0644); "
        "run chmod 600 on it",
    )
