"""The archive fixtures themselves: a test that reopens an archive after a command must get the archive, and the
settings, that command had; a module that asks ``archive`` for other settings must get them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from archiver.archive import Archive
from archiver.errors import CatalogError
from tests.fixtures.archives import OpenArchive


@pytest.fixture
def archive_settings() -> dict[str, object]:
    return {"batch_messages": 7, "compression_level": 9}


def test_archive_takes_the_settings_the_module_asks_for(archive: Archive, tmp_path: Path) -> None:
    assert archive.root == tmp_path / "archive"
    assert (archive.settings.batch_messages, archive.settings.compression_level) == (7, 9)


def test_open_archive_reads_a_config_file_as_a_command_does(
    config_file: Callable[..., Path], open_archive: OpenArchive, tmp_path: Path
) -> None:
    path = config_file(archive_extra="batch_messages = 3\nmax_run_time = 60")
    with open_archive(path) as archive:
        assert archive.root == tmp_path / "archive"
        assert (archive.settings.batch_messages, archive.settings.max_run_time) == (3, 60)
        archive.catalog.ensure_account("acct", "imap")
    with open_archive(path, batch_messages=9) as archive:  # a setting given replaces the file's, the rest stay
        assert (archive.settings.batch_messages, archive.settings.max_run_time) == (9, 60)


def test_a_read_only_open_cannot_write(
    config_file: Callable[..., Path], open_archive: OpenArchive, tmp_path: Path
) -> None:
    path = config_file()
    open_archive(path).close()  # made, as a first backup makes it
    with open_archive(path, readonly=True) as archive, pytest.raises(CatalogError, match="readonly"):
        archive.catalog.ensure_account("acct", "imap")
