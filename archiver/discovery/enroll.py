"""Adding a discovered account: its name, its table checked by the config reader, a real login.

``archiver account add`` (and the web UI, later) call these, so the rules live in one place:
the table is read back by the same reader as every run (a table we write is a table we load),
and the login goes through the same source classes as a backup (the same TLS checks, the same
one-line errors), so "it logged in here" means "the backup will log in".
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from archiver.config import AccountConfig, PasswordSource, config_from_toml_text
from archiver.discovery.model import split_address

_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def default_name(email: str) -> str:
    """An account name from an address: ``bob@example.org`` → ``bob-example.org`` (names allow ``[A-Za-z0-9._-]``)."""
    local, domain = split_address(email)
    return _NOT_IN_NAME.sub("-", f"{local}-{domain}").strip("-.") or "account"


def account_from_table(table: str, config_path: Path) -> AccountConfig:
    """The account a rendered ``[[accounts]]`` table gives, read as the config file at ``config_path`` would read it."""
    text = f'[archive]\npath = "archive"\n\n{table}'
    return config_from_toml_text(text, config_path).accounts[0]


def try_login(account: AccountConfig, password: str) -> None:
    """Log in as a backup would and log out; the source's own one-line error when it cannot."""
    tested = replace(account, password=PasswordSource("value", value=password, account=account.name, key="password"))
    if account.protocol == "pop3":
        from archiver.sources.pop3 import Pop3Source

        Pop3Source(tested).connect().close()
    else:
        from archiver.sources.imap import ImapSource

        ImapSource(tested).connect().close()
