"""Opening an archive: a path that is a file is exit code 2; the top level is made owner-only whatever
the umask; an exposed archive is reported once."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.archive import Archive
from archiver.catalog import Catalog
from archiver.config import ArchiveConfig
from archiver.errors import ArchiveAccessError


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_archive_path_that_is_a_file_is_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "archive"
    path.write_text("x")
    for readonly in (False, True):
        with pytest.raises(ArchiveAccessError, match="is not a directory") as caught:
            Archive(ArchiveConfig(path), readonly=readonly)
        assert caught.value.exit_code == 2


@pytest.mark.parametrize(("group_readable", "dir_mode", "file_mode"), [(False, 0o700, 0o600), (True, 0o750, 0o640)])
def test_new_archive_top_level_modes_do_not_depend_on_the_umask(
    tmp_path: Path, umask_022: None, group_readable: bool, dir_mode: int, file_mode: int
) -> None:
    root = tmp_path / "archive"
    root.mkdir()  # made beforehand, as systemd's StateDirectory or an operator's mkdir does
    Archive(ArchiveConfig(root, group_readable=group_readable)).close()
    for name in (".", "blobs", "locks", "index"):
        assert stat.S_IMODE((root / name).stat().st_mode) == dir_mode, name
    assert stat.S_IMODE((root / Catalog.FILENAME).stat().st_mode) == file_mode


def test_exposed_archive_warns_once_per_process(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "archive"
    Archive(ArchiveConfig(root)).close()
    (root / Catalog.FILENAME).chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="archiver.permissions"):
        for _ in range(2):
            Archive(ArchiveConfig(root), readonly=True).close()
    assert len(caplog.records) == 1
    assert "catalog.sqlite3 is accessible by others (mode 0644)" in caplog.records[0].getMessage()
    assert f"chmod -R go-rwx {root}" in caplog.records[0].getMessage()
