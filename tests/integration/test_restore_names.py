"""Restore of folder names a server cannot take as they are: empty components, absolute names, the
empty name, ``.`` and ``..`` components (mapped here, not left to the server), and a folder the server
refuses (its messages counted as failed, never as a clean run)."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime

import pytest

from archiver.archive import Archive
from archiver.restore.execute import restore
from archiver.scope import Scope
from tests.fixtures.archives import store_placements
from tests.fixtures.config import parse_config
from tests.fixtures.mail_server import account_toml

pytestmark = pytest.mark.integration

WHEN = datetime(2019, 4, 5, 6, 7, 8, tzinfo=UTC).isoformat()
# source folder name (delimiter "/") -> where the restore under prefix "R" puts it
MAPPED = {
    "a//b": "R/a/b",
    "/abs": "R/abs",
    "trailing/": "R/trailing",
    "": "R/(unnamed)",
    "/": "R/(unnamed)~2",
    "..": "R/(dot-dot)",
    "x/../y": "R/x/(dot-dot)/y",
    "./here": "R/(dot)/here",
}


def message(n: int, folder: str) -> bytes:
    return f"Message-ID: <n{n}@names>\r\nSubject: in {folder!r}\r\n\r\nbody {n}\r\n".encode()


def archive_folders(archive: Archive, names) -> dict[str, bytes]:
    raws = {}
    for n, name in enumerate(names):
        raws[name] = message(n, name)
        store_placements(archive, "src", "imap", name, "/", [(1, raws[name], ("\\Seen",), WHEN)])
    return raws


def server_folders(dovecot, user) -> set[str]:
    client = dovecot.connect(user.name, user.password)
    try:
        return {name for _flags, _delim, name in client.list_folders()}
    finally:
        client.logout()


def held(dovecot, user, folder) -> Counter:
    messages = dovecot.fetch_all(user.name, user.password, folder).values()
    return Counter(hashlib.sha256(raw).hexdigest() for raw, _f, _d in messages)


def test_empty_dot_and_absolute_components_are_mapped_and_restore_twice_is_idempotent(
    dovecot, mail_user, tmp_path, config_file, open_archive
):
    config = parse_config(config_file(account_toml(dovecot, mail_user, name="dst")))
    with open_archive(config) as archive:
        raws = archive_folders(archive, MAPPED)
        first = restore(archive, Scope("src"), config.account("dst"), prefix="R")
        again = restore(archive, Scope("src"), config.account("dst"), prefix="R")
    assert first.ok, (first.problems, [f.failures for f in first.folders])
    assert {f.source: f.target for f in first.folders} == MAPPED
    assert first.appended == len(MAPPED) and first.failed == 0
    assert again.ok and again.appended == 0 and again.skipped == len(MAPPED), again.problems
    names = server_folders(dovecot, mail_user)
    assert set(MAPPED.values()) <= names
    assert not any(part in (".", "..", "") for name in names for part in name.split("/")), names
    for source, target in MAPPED.items():
        assert held(dovecot, mail_user, target) == Counter([hashlib.sha256(raws[source]).hexdigest()]), target


def test_a_folder_the_server_refuses_counts_its_messages_as_failed(
    dovecot, mail_user, tmp_path, config_file, open_archive
):
    """A 1 kB folder name (Dovecot refuses it at CREATE): the report says failed, not "failed 0"."""
    config = parse_config(config_file(account_toml(dovecot, mail_user, name="dst")))
    long_name = "n" * 1000
    with open_archive(config) as archive:
        store_placements(
            archive, "src", "imap", long_name, "/", [(n, message(n, "long"), (), WHEN) for n in range(1, 4)]
        )
        store_placements(archive, "src", "imap", "fine", "/", [(1, message(9, "fine"), (), WHEN)])
        report = restore(archive, Scope("src"), config.account("dst"), prefix="R")
    by_source = {f.source: f for f in report.folders}
    assert not report.ok and report.failed == 3 and report.appended == 1
    assert by_source[long_name].failed == 3 and "too long" in report.problems[0]
    assert by_source["fine"].appended == 1 and by_source["fine"].failed == 0
