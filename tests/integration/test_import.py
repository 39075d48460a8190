"""Import mbox, Maildir and .eml trees into a local account: exact bytes, flags, dates, dedup with IMAP."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from datetime import UTC, datetime

import pytest

from archiver.backup import run_backup
from archiver.config import config_from_toml_text
from archiver.files.export import export
from archiver.files.importer import import_path
from archiver.restore.execute import restore
from archiver.scope import Scope
from tests.fixtures.config import write_config
from tests.fixtures.mail_server import account_toml, fill_for_restore, state

pytestmark = pytest.mark.integration

LOCAL = '\n[[accounts]]\nname = "{name}"\nprotocol = "local"\n'


def config_with_locals(dovecot, user, tmp_path, *names):
    path = write_config(
        tmp_path, account_toml(dovecot, user, name="acct") + "".join(LOCAL.format(name=n) for n in names)
    )
    return config_from_toml_text(path.read_text(), path)


def placements(catalog, account) -> Counter:
    account_id = catalog.account_id(account)
    return Counter(
        (row.folder, row.blob_id, frozenset(row.flags) - {"\\Recent"}, row.internaldate)
        for row in catalog.placements_as_of(account_id)
    )


@pytest.mark.parametrize("fmt", ["mbox", "maildir", "eml"])
def test_export_then_import_dedups_against_the_imap_copy(dovecot, mail_user, tmp_path, fmt, open_archive):
    fill_for_restore(dovecot, mail_user, 30, seed=21, folders=4)
    config = config_with_locals(dovecot, mail_user, tmp_path, "old")
    with open_archive(config) as archive:
        assert run_backup(config, config.account("acct"), archive=archive).ok
        original = placements(archive.catalog, "acct")
        blobs_before = archive.catalog.archive_totals()["blobs"]
        report = export(archive, Scope("acct"), fmt, tmp_path / "out")
        assert report.ok
        imported = import_path(archive, config.account("old"), tmp_path / "out")
        assert imported.ok, imported.problems
        assert imported.blobs_new == 0 and archive.catalog.archive_totals()["blobs"] == blobs_before
        assert imported.placements_new == sum(original.values())
        # the manifest brings back folder names, flags and INTERNALDATE (offset included)
        assert placements(archive.catalog, "old") == original
        again = import_path(archive, config.account("old"), tmp_path / "out")
        assert again.ok and again.placements_new == 0 and again.messages == imported.messages
        runs = archive.catalog.last_runs(archive.catalog.account_id("old"), 2)
        assert [r["status"] for r in runs] == ["ok", "ok"]


def test_foreign_sources_without_manifest(dovecot, mail_user, tmp_path, open_archive):
    config = config_with_locals(dovecot, mail_user, tmp_path, "old")
    raws = [
        b"Message-ID: <1@x>\r\nSubject: one\r\nStatus: RO\r\nX-Status: A\r\n\r\nFrom here\r\n>From there\r\n",
        b"Message-ID: <2@x>\nSubject: two\n\nplain LF body\n\n",
        b"Subject: three, no id\n\nbody\n",
    ]
    # an mboxrd file as a takeout would give it
    mbox = tmp_path / "src" / "Takeout.mbox"
    mbox.parent.mkdir()
    with mbox.open("wb") as out:
        for raw in raws:
            out.write(b"From someone@example.org Mon Mar  3 10:00:00 2003\n")
            body = b"".join(
                b">" + line if line.lstrip(b">").startswith(b"From ") else line for line in raw.splitlines(True)
            )
            out.write(body + b"\n")
    # a Maildir++ as Dovecot or Courier leave it (flags in names), with one subfolder (modified UTF-7)
    for directory in ("md", "md/.Lists.&ANw-ber"):
        for sub in ("cur", "new", "tmp"):
            (tmp_path / directory / sub).mkdir(parents=True)
    (tmp_path / "md" / "cur" / "1590000000.M1P2.host,S=99:2,FS").write_bytes(raws[0])
    (tmp_path / "md" / ".Lists.&ANw-ber" / "new" / "1590000001.M2P2.host").write_bytes(raws[1])
    # .eml files in a tree
    eml = tmp_path / "eml" / "Projects" / "2020"
    eml.mkdir(parents=True)
    (eml / "a.eml").write_bytes(raws[2])
    when = datetime(2020, 5, 6, 7, 8, 9, tzinfo=UTC).timestamp()
    os.utime(eml / "a.eml", (when, when))

    with open_archive(config) as archive:
        account = config.account("old")
        assert import_path(archive, account, mbox).ok
        assert import_path(archive, account, tmp_path / "md", folder="Old server").ok
        assert import_path(archive, account, tmp_path / "eml").ok
        got = {
            (row.folder, row.blob_id): row
            for row in archive.catalog.placements_as_of(archive.catalog.account_id("old"))
        }
    sha = [hashlib.sha256(r).hexdigest() for r in raws]
    first = got[("Takeout", sha[0])]
    assert set(first.flags) == {"\\Seen", "\\Answered"} and first.internaldate == "2003-03-03T10:00:00+00:00"
    assert ("Takeout", sha[1]) in got and ("Takeout", sha[2]) in got  # bytes exact through mboxrd
    assert set(got[("Old server", sha[0])].flags) == {"\\Flagged", "\\Seen"}
    assert ("Old server/Lists/Über", sha[1]) in got
    assert datetime.fromisoformat(got[("Projects/2020", sha[2])].internaldate).timestamp() == when


def test_imported_local_account_restores_into_imap(dovecot, mail_user, tmp_path, open_archive):
    fill_for_restore(dovecot, mail_user, 20, seed=33, folders=3)
    config = config_with_locals(dovecot, mail_user, tmp_path, "old")
    folders = ["Doomed/Ünïcode & more"]
    before = state(dovecot, mail_user, folders[0])
    with open_archive(config) as archive:
        assert run_backup(config, config.account("acct"), archive=archive).ok
        assert export(archive, Scope("acct", folders=tuple(folders)), "eml", tmp_path / "eml").ok
        assert import_path(archive, config.account("old"), tmp_path / "eml").ok
        report = restore(archive, Scope("old", folders=tuple(folders)), config.account("acct"), prefix="FromLocal")
        assert report.ok and report.appended == sum(before.values())
    assert state(dovecot, mail_user, "FromLocal/" + folders[0]) == before


def test_restoring_imported_bare_lf_mail_twice_adds_nothing(dovecot, mail_user, tmp_path, open_archive):
    """The server stores a bare-LF message with CRLF: the second restore must still know it is there."""
    config = config_with_locals(dovecot, mail_user, tmp_path, "old")
    raws = [
        b"Message-ID: <lf1@x>\nSubject: bare LF\n\nline one\nline two\n",
        b"Message-ID: <lf2@x>\r\nSubject: mixed\r\n\nbody\n",
        b"Subject: no id, bare LF\n\nbody\n",
        b"Message-ID: <crlf@x>\r\nSubject: CRLF\r\n\r\nbody\r\n",
    ]
    mbox = tmp_path / "Takeout.mbox"
    with mbox.open("wb") as out:
        for number, raw in enumerate(raws):
            out.write(f"From someone@example.org Mon Mar  {number + 3} 10:00:00 2003\n".encode() + raw + b"\n")
    with open_archive(config) as archive:
        assert import_path(archive, config.account("old"), mbox).ok
        first = restore(archive, Scope("old"), config.account("acct"), prefix="R")
        again = restore(archive, Scope("old"), config.account("acct"), prefix="R")
    assert first.ok and first.appended == len(raws), first.problems
    assert again.ok and (again.appended, again.skipped) == (0, len(raws)), again.problems
    assert sum(state(dovecot, mail_user, "R/Takeout").values()) == len(raws)
