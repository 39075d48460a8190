"""Export edges without a server: folder names no filesystem takes as they are, INTERNALDATEs at the
edge of the calendar, messages without a final newline (real mail), and an export stopped midway.
Each is checked the way a user would: export, import back, compare bytes, folders and dates."""

from __future__ import annotations

import hashlib
import mailbox
from collections import Counter
from pathlib import Path

import pytest

from archiver.config import config_from_toml_text
from archiver.devtools.sample_mail import corpus_messages
from archiver.errors import RestoreError
from archiver.files.export import export
from archiver.files.importer import import_path
from archiver.progress import Progress
from archiver.scope import Scope
from tests.fixtures.archives import store_placements

FORMATS = ["mbox", "maildir", "eml"]
LOCAL = '\n[[accounts]]\nname = "{name}"\nprotocol = "local"\n'
WHEN = "2019-04-05T06:07:08+02:00"


@pytest.fixture
def config(tmp_path, config_file):
    path = config_file("".join(LOCAL.format(name=n) for n in ("src", "back", "bare")))
    return config_from_toml_text(path.read_text(), path)


def contents(catalog, account: str) -> Counter:
    """(folder, blob id, INTERNALDATE) of every placement of an account: what a round trip must keep."""
    rows = catalog.placements_as_of(catalog.account_id(account))
    return Counter((row.folder, row.blob_id, row.internaldate) for row in rows)


def message(n: int) -> bytes:
    return f"Message-ID: <{n}@edge>\r\nSubject: edge {n}\r\n\r\nFrom the start\r\nbody {n}\r\n".encode()


def all_names(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*")]


LONG = "x" * 10_000
ODD_FOLDERS = [LONG + "/a", LONG + "/b", "Ü" * 3000, "", "a//b", "INBOX", ".hidden/..", "Lists.2024/ok"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_odd_folder_names_export_and_import_back_exactly(config, tmp_path, fmt, open_archive):
    """10 kB names (two sharing their first 10 kB), the empty name, empty and dot components: every
    format writes them under names of at most ~100 bytes, keeps them apart, never puts the folder
    named "" into INBOX, and the import brings the original names back."""
    with open_archive(config) as archive:
        for n, folder in enumerate(ODD_FOLDERS):
            store_placements(archive, "src", "local", folder, "/", [(f"m{n}", message(n), (), WHEN)])
        report = export(archive, Scope("src"), fmt, tmp_path / "out")
        assert report.ok and report.messages == len(ODD_FOLDERS), report.failures
        back = import_path(archive, config.account("back"), tmp_path / "out", fmt=fmt)
        assert back.ok, back.problems
        assert contents(archive.catalog, "back") == contents(archive.catalog, "src")
        assert back.blobs_new == 0
    names = all_names(tmp_path / "out")
    assert max(len(name.encode()) for name in names) <= 110, max(names, key=len)[:120]
    assert not any(name.endswith(".part") for name in names)
    if fmt == "maildir":  # INBOX is the root maildir: it holds INBOX's message and no other
        inbox = mailbox.Maildir(tmp_path / "out", factory=None, create=False)
        assert [m.get("Message-ID") for m in inbox] == [f"<{ODD_FOLDERS.index('INBOX')}@edge>"]


def test_maildir_export_without_manifest_still_imports(config, tmp_path, open_archive):
    """A reader without the manifest sees the shortened Maildir++ names: they still decode (the cut
    never splits a modified UTF-7 run) and every message arrives, each long folder on its own."""
    with open_archive(config) as archive:
        for n, folder in enumerate(ODD_FOLDERS):
            store_placements(archive, "src", "local", folder, "/", [(f"m{n}", message(n), (), WHEN)])
        assert export(archive, Scope("src"), "maildir", tmp_path / "out").ok
        (tmp_path / "out" / "MANIFEST.tsv").unlink()
        bare = import_path(archive, config.account("bare"), tmp_path / "out", fmt="maildir")
        assert bare.ok, bare.problems
        folders = {row.folder for row in archive.catalog.placements_as_of(archive.catalog.account_id("bare"))}
    assert bare.messages == len(ODD_FOLDERS) and len(folders) == len(ODD_FOLDERS)


EXTREMES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "1969-12-31T23:59:59+00:00"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_extreme_internaldates_export_and_come_back_exactly(config, tmp_path, fmt, open_archive):
    """An INTERNALDATE with no UTC form in Python's range (year 0 or 10000 in UTC) once crashed the mbox
    export with OverflowError and left a .part file; now every format writes it and the import gets the
    exact original back from the manifest."""
    with open_archive(config) as archive:
        entries = [(f"m{n}", message(n), ("\\Seen",), when) for n, when in enumerate(EXTREMES)]
        store_placements(archive, "src", "local", "Edge", "/", entries)
        report = export(archive, Scope("src"), fmt, tmp_path / "out")
        assert report.ok and report.messages == len(EXTREMES), report.failures
        assert import_path(archive, config.account("back"), tmp_path / "out", fmt=fmt).ok
        assert contents(archive.catalog, "back") == contents(archive.catalog, "src")
    assert not any(name.endswith(".part") for name in all_names(tmp_path / "out"))


class StopAfter(Progress):
    """A caller that gives up after ``count`` messages (a cancelled job, Ctrl-C): the export stops there."""

    def __init__(self, count: int) -> None:
        self.left = count

    def advance(self, messages: int, size: int) -> None:
        self.left -= messages
        if self.left <= 0:
            raise RestoreError("stopped by the caller")


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_export_stopped_midway_leaves_no_temporary_files(config, tmp_path, fmt, open_archive):
    with open_archive(config) as archive:
        store_placements(archive, "src", "local", "Box", "/", [(f"m{n}", message(n), (), WHEN) for n in range(5)])
        with pytest.raises(RestoreError):
            export(archive, Scope("src"), fmt, tmp_path / "out", progress=StopAfter(2))
    names = all_names(tmp_path / "out")
    assert not any(name.endswith(".part") for name in names), names
    assert not any((tmp_path / "out").rglob("tmp/*")), names


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_corpus_messages_without_final_newline_round_trip_byte_exact(config, tmp_path, corpus_dir, fmt, open_archive):
    """Real mail without a final newline (Dovecot keeps it as sent): mboxrd must add one, and the
    import must take it off again; every format gives the same blobs back, so nothing new is stored."""
    without = [raw for _name, raw in corpus_messages(corpus_dir) if raw and not raw.endswith(b"\n")]
    with_newline = [raw for _name, raw in corpus_messages(corpus_dir) if raw.endswith(b"\n")][:20]
    assert len(without) >= 20  # 56 of the 1,576 corpus messages
    source = tmp_path / "eml" / "Corpus"
    source.mkdir(parents=True)
    for n, raw in enumerate(without + with_newline):
        (source / f"{n:04d}.eml").write_bytes(raw)
    with open_archive(config) as archive:
        assert import_path(archive, config.account("src"), tmp_path / "eml").ok
        report = export(archive, Scope("src"), fmt, tmp_path / "out")
        assert report.ok, report.failures
        back = import_path(archive, config.account("back"), tmp_path / "out", fmt=fmt)
        assert back.ok, back.problems
        assert back.blobs_new == 0, "a message came back with other bytes"
        assert contents(archive.catalog, "back") == contents(archive.catalog, "src")
        got = Counter(row.blob_id for row in archive.catalog.placements_as_of(archive.catalog.account_id("back")))
    assert got == Counter(hashlib.sha256(raw).hexdigest() for raw in without + with_newline)
