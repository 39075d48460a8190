"""A first sync of many folders costs the catalog the same work per folder however many there are.

Timing would be flaky on a shared machine, so the test counts SQLite virtual-machine steps on the
catalog's connection (``set_progress_handler``), the measure of the catalog work itself: a run that
re-reads every folder per new folder (what ``ensure_folder`` did) does 4x the work per folder with
4x the folders; a linear one does the same.
"""

from __future__ import annotations

import secrets

import pytest

from archiver.backup import run_backup
from tests.fixtures.archives import OpenArchive
from tests.fixtures.config import parse_config, write_config
from tests.fixtures.mail_server import MailUser, account_toml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STEP = 100  # VM instructions per progress callback


def message(folder: str) -> bytes | None:
    """Folders "a…" are empty (listed first), folders "m…" hold one message each."""
    if folder.startswith("a"):
        return None
    return f"Message-ID: <{folder}@x>\r\nSubject: {folder}\r\n\r\nthe one message of {folder}\r\n".encode()


def catalog_steps_per_folder(open_archive: OpenArchive, dovecot, user, tmp_path, folders: int) -> float:
    """SQLite VM steps of a first backup run, per folder, for ``folders`` folders: half empty, half one message."""
    dovecot.connect(user.name).logout()  # the first login creates the maildir
    names = [f"{prefix}{n:06d}" for prefix in "am" for n in range(folders // 2)]
    dovecot.make_folders_on_disk(user.name, names, message)
    tmp_path.mkdir()
    config = parse_config(write_config(tmp_path, account_toml(dovecot, user)))
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += STEP
        return 0

    with open_archive(config) as archive:
        archive.catalog.db.set_progress_handler(count, STEP)
        report = run_backup(config, config.accounts[0], archive=archive, index=False)
        archive.catalog.db.set_progress_handler(None, STEP)
        assert report.ok, report.problems
        assert len(report.folders) == folders + 1  # and INBOX
        assert sum(f.new for f in report.folders) == folders // 2
    return steps / folders


def test_first_sync_catalog_work_per_folder_does_not_grow_with_the_folder_count(
    dovecot, mail_user, tmp_path, open_archive
):
    big_user = MailUser(f"{mail_user.name}big", f"pw-{secrets.token_hex(6)}")
    dovecot.add_user(big_user.name, big_user.password)
    small_user = mail_user
    small = catalog_steps_per_folder(open_archive, dovecot, small_user, tmp_path / "small", 200)
    big = catalog_steps_per_folder(open_archive, dovecot, big_user, tmp_path / "big", 800)
    assert big < 1.3 * small, f"catalog work per folder grew {big / small:.2f}x with 4x the folders"
