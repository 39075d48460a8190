"""Log in once and out again, as a backup would: "it logged in here" then means "the backup will log in".

``archiver account add`` uses it before it writes an account; it goes through the same source
classes as a run, so the TLS checks and the one-line errors are the same.
"""

from __future__ import annotations

from dataclasses import replace

from archiver.config import AccountConfig, PasswordSource
from archiver.sources.imap import ImapSource
from archiver.sources.pop3 import Pop3Source


def try_login(account: AccountConfig, password: str) -> None:
    """Log in with ``password`` (instead of the account's own source) and log out; the source's error line if not."""
    tested = replace(account, password=PasswordSource("value", value=password, account=account.name, key="password"))
    if account.protocol == "pop3":
        Pop3Source(tested).connect().close()
    else:
        ImapSource(tested).connect().close()
