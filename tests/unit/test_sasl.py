"""The SASL bearer-token messages byte for byte, the mechanism choice, and the one-retry rule."""

from __future__ import annotations

import base64

import pytest

from archiver.errors import AuthError, AuthorisationExpired
from archiver.sources.sasl import BearerLogin, TokenRefused, choose_mechanism, login_with_token


def test_xoauth2_is_googles_format() -> None:
    # https://developers.google.com/gmail/imap/xoauth2-protocol: base64("user=" {User} "^Aauth=Bearer " {Token} "^A^A")
    login = BearerLogin("someuser@example.com", "XOAUTH2", "imap.example.com", 993)
    assert login.initial_response("ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg") == (
        "user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
    )
    assert base64.b64decode(login.encoded("tok")) == b"user=someuser@example.com\x01auth=Bearer tok\x01\x01"


def test_oauthbearer_is_rfc_7628_with_the_authzid_escaped() -> None:
    # RFC 7628 4.1's example, with a user name holding the two characters a GS2 header must escape.
    login = BearerLogin("user,x=y@example.com", "OAUTHBEARER", "server.example.com", 143)
    assert login.initial_response("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==") == (
        "n,a=user=2Cx=3Dy@example.com,\x01host=server.example.com\x01port=143\x01"
        "auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )


@pytest.mark.parametrize(("mechanism", "after_error"), [("XOAUTH2", ""), ("OAUTHBEARER", "\x01")])
def test_the_responder_answers_an_error_challenge_as_each_mechanism_asks(mechanism: str, after_error: str) -> None:
    respond = BearerLogin("u", mechanism, "h", 1).responder("tok")
    assert "auth=Bearer tok" in respond(b"")
    assert respond(b'{"status":"401"}') == after_error  # no second copy of the token
    assert respond(b'{"status":"401"}') == after_error


@pytest.mark.parametrize(
    ("setting", "offered", "chosen"),
    [
        ("auto", ["PLAIN", "XOAUTH2", "OAUTHBEARER"], "OAUTHBEARER"),
        ("auto", ["plain", "xoauth2"], "XOAUTH2"),  # Microsoft 365 offers only XOAUTH2
        ("xoauth2", ["XOAUTH2", "OAUTHBEARER"], "XOAUTH2"),
        ("oauthbearer", ["OAUTHBEARER"], "OAUTHBEARER"),
    ],
)
def test_choose_mechanism(setting: str, offered: list[str], chosen: str) -> None:
    assert choose_mechanism(setting, offered, "acct: host:993") == chosen


def test_no_bearer_mechanism_is_one_line_naming_what_is_offered() -> None:
    with pytest.raises(AuthError) as caught:
        choose_mechanism("auto", ["PLAIN", "LOGIN"], "acct: host:993")
    assert str(caught.value) == (
        "acct: host:993: the server offers no OAuth2 login (SASL OAUTHBEARER or XOAUTH2; it offers LOGIN, PLAIN); "
        'use auth = "password" for this server'
    )


class Tokens:
    """A token source handing out numbered tokens; ``expired`` makes ``refused()`` raise as a revoked grant does."""

    def __init__(self, expired: bool = False) -> None:
        self.issued = ["token-1"]
        self.expired = expired

    def access_token(self) -> str:
        return self.issued[-1]

    def refused(self) -> str:
        if self.expired:
            raise AuthorisationExpired("account a: re-authorise with `archiver auth a`")
        self.issued.append(f"token-{len(self.issued) + 1}")
        return self.issued[-1]


LOGIN = BearerLogin("u", "XOAUTH2", "h", 1)


def test_a_refused_token_is_replaced_once() -> None:
    tried: list[str] = []

    def attempt(token: str) -> None:
        tried.append(token)
        if token == "token-1":
            raise TokenRefused("[AUTHENTICATIONFAILED] Authentication failed.")

    login_with_token(Tokens(), attempt, "a: h:1", LOGIN)
    assert tried == ["token-1", "token-2"]


def test_a_second_refusal_is_final_and_names_no_token() -> None:
    tried: list[str] = []

    def attempt(token: str) -> None:
        tried.append(token)
        raise TokenRefused("no")

    with pytest.raises(AuthError) as caught:
        login_with_token(Tokens(), attempt, "a: h:1", LOGIN)
    assert tried == ["token-1", "token-2"]
    assert "token-" not in str(caught.value)
    assert str(caught.value).startswith(
        "a: h:1: XOAUTH2 login refused for user 'u' even with a fresh OAuth2 token (no)"
    )


def test_a_revoked_grant_passes_through_unchanged() -> None:
    def attempt(token: str) -> None:
        raise TokenRefused("no")

    with pytest.raises(AuthorisationExpired, match="re-authorise with `archiver auth a`"):
        login_with_token(Tokens(expired=True), attempt, "a: h:1", LOGIN)
