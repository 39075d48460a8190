"""Real mail with a broken header block (a line that is neither a field nor a fold before the
Message-ID): the catalog reads its headers as Dovecot does, and restoring it twice adds nothing."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from datetime import UTC, datetime

import pytest

from archiver.backup import run_backup
from archiver.devtools.sample_mail import corpus_messages
from archiver.restore.execute import restore
from archiver.scope import Scope
from tests.fixtures.config import parse_config
from tests.fixtures.mail_server import account_toml, second_user

pytestmark = pytest.mark.integration

_FIELD = re.compile(rb"[\x21-\x39\x3b-\x7e]+:|[\t ]|From ")


def broken_before_message_id(raw: bytes) -> bool:
    """Whether a line that is no header field and no fold comes before the Message-ID field."""
    for line in raw.splitlines(keepends=True):
        if line.strip() == b"" or line.lower().startswith(b"message-id:"):
            return False
        if not _FIELD.match(line):
            return re.search(rb"(?im)^message-id:", raw.split(b"\n\n")[0].split(b"\r\n\r\n")[0]) is not None
    return False


@pytest.fixture
def broken_corpus(corpus_dir) -> list[tuple[str, bytes]]:
    found = [(name, raw) for name, raw in corpus_messages(corpus_dir) if broken_before_message_id(raw)]
    assert len(found) >= 3, [name for name, _ in found]  # rspamd phish_sender2/4, stalwart malformed 019, …
    return found


def served(dovecot, user, folder) -> Counter:
    return Counter(
        hashlib.sha256(raw).hexdigest() for raw, _f, _d in dovecot.fetch_all(user.name, user.password, folder).values()
    )


def test_broken_header_block_restored_twice_makes_no_duplicates(
    dovecot, mail_user, tmp_path, broken_corpus, config_file, open_archive
):
    """The README promises "running it twice never makes duplicates"; Dovecot reads the Message-ID
    past the bad line, so the catalog must too (and the skip check must not depend on it)."""
    when = datetime(2021, 5, 6, 7, 8, 9, tzinfo=UTC)
    dovecot.append_many(mail_user.name, "Broken", [(raw, ("\\Seen",), when) for _name, raw in broken_corpus])
    expected = served(dovecot, mail_user, "Broken")
    target = second_user(dovecot, mail_user)
    config = parse_config(
        config_file(account_toml(dovecot, mail_user, name="acct") + account_toml(dovecot, target, name="dst"))
    )
    with open_archive(config) as archive:
        assert run_backup(config, config.account("acct"), archive=archive).ok
        first = restore(archive, Scope("acct"), config.account("dst"), prefix="R")
        again = restore(archive, Scope("acct"), config.account("dst"), prefix="R")
        rows = list(archive.catalog.placements_as_of(archive.catalog.account_id("acct")))
    assert served(dovecot, target, "R/Broken") == expected  # on the server: each message once
    assert first.ok and first.appended == len(broken_corpus), (first.problems, first.folders)
    assert again.ok and again.appended == 0 and again.skipped == len(broken_corpus), again.folders
    # the catalog reads the header fields Dovecot reads: the Message-ID and subject past the bad line
    assert all(row.message_id and row.subject for row in rows), [r.blob_id[:12] for r in rows]


def test_rows_archived_without_message_id_are_still_recognised(
    dovecot, mail_user, tmp_path, broken_corpus, config_file, open_archive
):
    """Archives made before the header scan was fixed hold these messages without a Message-ID (the
    summary of a blob is written once): the skip check finds them by size and INTERNALDATE and
    confirms by sha256, so restoring twice makes no duplicates without any backfill."""
    when = datetime(2020, 2, 3, 4, 5, 6, tzinfo=UTC)
    dovecot.append_many(mail_user.name, "Old", [(raw, (), when) for _name, raw in broken_corpus])
    config = parse_config(config_file(account_toml(dovecot, mail_user, name="acct")))
    with open_archive(config) as archive:
        assert run_backup(config, config.account("acct"), archive=archive).ok
        with archive.catalog.db:  # what the old header scan recorded for them
            archive.catalog.db.execute("UPDATE messages SET message_id = NULL, subject = NULL, sender = NULL")
        scope = Scope("acct", folders=("Old",))
        first = restore(archive, scope, config.account("acct"), prefix="R")
        again = restore(archive, scope, config.account("acct"), prefix="R")
    assert first.ok and first.appended == len(broken_corpus), (first.problems, first.folders)
    assert again.ok and again.appended == 0 and again.skipped == len(broken_corpus), again.folders
    assert served(dovecot, mail_user, "R/Old") == served(dovecot, mail_user, "Old")
