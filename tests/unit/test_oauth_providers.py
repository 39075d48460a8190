"""The provider registry: endpoints, scopes and the one-line errors of a wrong provider setting."""

from __future__ import annotations

import pytest

from archiver.errors import ConfigError
from archiver.oauth.providers import resolve_endpoints


def test_google_uses_the_loopback_flow_and_asks_for_a_refresh_token() -> None:
    google = resolve_endpoints("google")
    assert google.token_url == "https://oauth2.googleapis.com/token"
    assert google.authorize_url == "https://accounts.google.com/o/oauth2/v2/auth"
    assert google.scopes == ("https://mail.google.com/",)
    assert google.device_url is None and google.default_flow == "loopback"
    assert dict(google.authorize_params) == {"access_type": "offline", "prompt": "consent"}


@pytest.mark.parametrize(
    ("protocol", "smtp", "scopes"),
    [
        ("imap", False, ("https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access")),
        ("pop3", False, ("https://outlook.office.com/POP.AccessAsUser.All", "offline_access")),
        ("imap", True, ("https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/SMTP.Send",
                        "offline_access")),
    ],
)  # fmt: skip
def test_microsoft_scopes_follow_the_protocol(protocol: str, smtp: bool, scopes: tuple[str, ...]) -> None:
    assert resolve_endpoints("microsoft", protocol=protocol, smtp=smtp).scopes == scopes


def test_microsoft_tenant_goes_into_every_url() -> None:
    ms = resolve_endpoints("microsoft", tenant="contoso.onmicrosoft.com")
    assert ms.device_url == "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode"
    assert ms.token_url == "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    assert resolve_endpoints("microsoft").default_flow == "device"
    assert "/common/" in resolve_endpoints("microsoft").token_url


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("gmail", {}, "unknown OAuth2 provider 'gmail'; expected one of google, microsoft, custom"),
        ("custom", {"device_url": "http://x/d"}, "OAuth2 provider 'custom' needs oauth2_token_url"),
        ("custom", {"token_url": "http://x/t"},
         "OAuth2 provider 'custom' needs oauth2_authorize_url or oauth2_device_url"),
        ("google", {"tenant": "common"}, "oauth2_tenant is only for provider 'microsoft', not 'google'"),
        ("microsoft", {"tenant": "a b"}, "oauth2_tenant 'a b' is not a tenant: expected common, consumers, "
                                         "organizations, a directory id or a domain"),
    ],
)  # fmt: skip
def test_bad_settings_are_one_line(name: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_endpoints(name, **options)
    assert str(caught.value) == message


def test_custom_endpoints_and_scopes_come_from_config() -> None:
    custom = resolve_endpoints("custom", token_url="http://127.0.0.1:1/t", authorize_url="http://127.0.0.1:1/a",
                               scopes=("mail",))  # fmt: skip
    assert (custom.default_flow, custom.scope) == ("loopback", "mail")
