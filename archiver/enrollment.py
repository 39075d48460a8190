"""Adding a discovered account to the config file: plan the table, test the login, write it.

``archiver account add`` and the web UI's "Add an account" page both go through here, so they
write the same table, refuse the same clashes and test the login the same way.  The order is the
user's: everything that can be refused without a password (a clash with the config file, a
table the reader would not take) is refused in :func:`plan_account`, before a password is asked
for; :func:`add_account` then logs in and only then writes, the password file first (0600, never
overwriting) and the config last, removing the password file again if the config write fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from archiver.config import AccountConfig
from archiver.config.append import account_from_table, append_account, appended, write_secret_file
from archiver.discovery.account_toml import AccountEntry, render_account
from archiver.discovery.model import Discovery
from archiver.sources.probe import try_login


@dataclass(frozen=True)
class AccountPlan:
    """A table ready to append, the account it reads as, and where a typed password would be kept."""

    table: str
    account: AccountConfig
    config_path: Path
    password_file: Path | None  # NAME.password next to the config, when the table says so and it is to be typed


def plan_account(found: Discovery, entry: AccountEntry, config_path: Path, *, write: bool) -> AccountPlan:
    """The table for ``found``, read back by the config reader and (to be written) checked against the file."""
    table = render_account(found, entry)
    account = account_from_table(table, config_path)
    if write:
        appended(config_path, table)
    typed = entry.secret is not None and entry.secret == ("password_file", f"{entry.name}.password")
    password_file = config_path.resolve().parent / f"{entry.name}.password" if typed else None
    return AccountPlan(table, account, config_path, password_file)


def add_account(plan: AccountPlan, password: str | None, *, login: bool = True, write: bool = True) -> Path | None:
    """Log in with ``password`` (if ``login``), then append the table (if ``write``); the password file made, if any.

    Nothing is written when the login is refused; a config that cannot be written leaves no
    password file behind.
    """
    if login and password is not None:
        try_login(plan.account, password)
    if not write:
        return None
    created = None
    if plan.password_file is not None and password is not None:
        write_secret_file(plan.password_file, password)
        created = plan.password_file
    try:
        append_account(plan.config_path, plan.table)
    except BaseException:
        if created is not None:
            created.unlink(missing_ok=True)
        raise
    return created
