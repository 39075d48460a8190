"""The [web] config section: defaults, users, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.config import config_from_toml_text
from archiver.errors import ConfigError

BASE = '[archive]\npath = "/tmp/a"\n[[accounts]]\nname = "alpha"\nprotocol = "local"\n'
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def load(text: str):
    return config_from_toml_text(BASE + text, Path("/tmp/archiver.toml"))


def test_defaults_without_a_web_section():
    web = load("").web
    assert web.listen == "127.0.0.1:8080" and web.users == () and web.secure_cookies is None


def test_users_are_read():
    web = load(
        f'[web]\nlisten = "0.0.0.0:9000"\nsecure_cookies = true\n'
        f'[[web.users]]\nname = "bob"\npassword_hash = "{HASH}"\naccounts = ["alpha"]\n'
    ).web
    assert web.listen == "0.0.0.0:9000" and web.secure_cookies is True
    assert web.users[0].name == "bob" and web.users[0].accounts == ("alpha",) and not web.users[0].admin
    assert HASH not in repr(web.users[0])


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[web]\nlisten = "8080"\n', "web.listen"),
        ('[[web.users]]\nname = "x"\npassword_hash = "plain"\n', "password_hash"),
        (f'[[web.users]]\nname = "x"\npassword_hash = "{HASH}"\naccounts = ["nope"]\n', "accounts"),
        ('[web]\nlisen = "1.2.3.4:1"\n', "lisen"),
    ],
)
def test_errors_name_the_key(text, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load(text)
