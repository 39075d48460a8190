"""Restore against a real Dovecot: a deleted folder as of before deletion, idempotence, other accounts."""

from __future__ import annotations

import pytest

from archiver.backup import run_backup
from archiver.restore.execute import restore
from archiver.restore.plan import plan_restore
from archiver.scope import Scope
from archiver.times import utc_now
from tests.fixtures.config import parse_config
from tests.fixtures.mail_server import SPECIAL, MailUser, account_toml, fill_for_restore, state

pytestmark = pytest.mark.integration


@pytest.fixture
def backed_up(dovecot, mail_user, tmp_path, config_file, open_archive):
    folders = fill_for_restore(dovecot, mail_user, 60)
    before = {name: state(dovecot, mail_user, name) for name in folders}
    config = parse_config(config_file(account_toml(dovecot, mail_user, name="acct")))
    with open_archive(config) as archive:
        assert run_backup(config, config.accounts[0], archive=archive).ok
    return config, before


def test_deleted_folder_restored_as_of_before_deletion(dovecot, mail_user, backed_up, open_archive):
    config, before = backed_up
    doomed = "Doomed/Ünïcode & more"
    moment = utc_now().isoformat()
    client = dovecot.connect(mail_user.name, mail_user.password)
    client.delete_folder(doomed)
    client.logout()
    with open_archive(config) as archive:
        assert run_backup(config, config.accounts[0], archive=archive).ok
        account = config.accounts[0]
        # Now, the whole account no longer has the folder; as of before the deletion it does.
        assert doomed not in [f.source for f in plan_restore(archive.catalog, Scope("acct")).folders]
        assert doomed in [f.source for f in plan_restore(archive.catalog, Scope("acct", as_of=moment)).folders]

        scope = Scope("acct", folders=(doomed,), as_of=moment)
        dry = restore(archive, scope, account, in_place=True, dry_run=True)
        assert dry.ok and dry.appended == len(SPECIAL) and dry.folders[0].created
        assert doomed not in _folders(dovecot, mail_user)

        report = restore(archive, scope, account, in_place=True)
        assert report.ok, (report.problems, report.folders)
        assert report.appended == len(SPECIAL) and report.skipped == 0
        assert state(dovecot, mail_user, doomed) == before[doomed]

        again = restore(archive, scope, account, in_place=True)
        assert again.ok and again.appended == 0 and again.skipped == len(SPECIAL)
        assert state(dovecot, mail_user, doomed) == before[doomed]


def test_whole_account_into_second_account_under_prefix(dovecot, mail_user, backed_up, tmp_path, config_file, cli):
    _config, before = backed_up
    other = MailUser(mail_user.name + "b", "pw-second")
    dovecot.add_user(other.name, other.password)
    path = config_file(
        account_toml(dovecot, mail_user, name="acct") + account_toml(dovecot, other, name="second"),
    )
    result = cli(path, "restore", "--account", "acct", "--to", "second", "--prefix", "Old/Mail", "--json")
    assert result.returncode == 0, result.stderr
    for folder, expected in before.items():
        assert state(dovecot, other, f"Old/Mail/{folder}") == expected, folder
    rerun = cli(path, "restore", "--account", "acct", "--to", "second", "--prefix", "Old/Mail")
    assert rerun.returncode == 0, rerun.stderr
    assert "appended 0," in rerun.stdout.splitlines()[-1]
    for folder, expected in before.items():
        assert state(dovecot, other, f"Old/Mail/{folder}") == expected, folder


def test_single_messages_by_blob_and_placement_id(dovecot, mail_user, backed_up, open_archive):
    config, _ = backed_up
    with open_archive(config) as archive:
        rows = archive.catalog.db.execute(
            "SELECT p.id, p.blob_id, f.name FROM placements p JOIN folders f ON f.id = p.folder_id "
            "WHERE f.name = 'INBOX' ORDER BY p.id LIMIT 2"
        ).fetchall()
        scope = Scope("acct", messages=(str(rows[0]["id"]), rows[1]["blob_id"]))
        report = restore(archive, scope, config.accounts[0])
        assert report.ok and report.appended == 2
        target = report.folders[0].target
        assert target.startswith(f"Restored/{utc_now().date().isoformat()}/")
        hashes = {k[0] for k in state(dovecot, mail_user, target)}
        assert hashes == {rows[0]["blob_id"], rows[1]["blob_id"]}


def _folders(dovecot, user) -> list[str]:
    client = dovecot.connect(user.name, user.password)
    try:
        return [name for _f, _d, name in client.list_folders()]
    finally:
        client.logout()
