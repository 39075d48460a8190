"""Fixtures of the integration tests (the Dovecot, the archive, the config and the CLI are in tests/conftest.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from archiver.backup import run_backup
from archiver.config import Config
from tests.fixtures.archives import OpenArchive
from tests.fixtures.config import parse_config
from tests.fixtures.discovery_servers import dns_server, web_server
from tests.fixtures.mail_server import MailUser, account_toml, fill_for_restore
from tests.fixtures.oauth_dovecot import oauth_authority, oauth_dovecot, oauth_user

__all__ = ["archived", "dns_server", "oauth_authority", "oauth_dovecot", "oauth_user", "web_server"]


@pytest.fixture
def archived(
    dovecot, mail_user: MailUser, config_file: Callable[..., Path], open_archive: OpenArchive
) -> tuple[Path, Config, dict[str, Counter]]:
    """An account of 40 generated messages (and the restore edge cases) backed up: the config path, the config,
    and per folder the multiset of (blob id, flags, INTERNALDATE) the archive holds."""
    fill_for_restore(dovecot, mail_user, 40, seed=9, folders=4)
    path = config_file(account_toml(dovecot, mail_user, name="acct"))
    config = parse_config(path)
    with open_archive(config) as archive:
        assert run_backup(config, config.accounts[0], archive=archive).ok
        rows = archive.catalog.placements_as_of(archive.catalog.account_id("acct"))
        expected: dict[str, Counter] = {}
        for row in rows:
            expected.setdefault(row.folder, Counter())[(row.blob_id, frozenset(row.flags), row.internaldate)] += 1
    return path, config, expected
