"""Restore against a real Dovecot: a deleted folder as of before deletion, idempotence, other accounts."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta, timezone

import pytest

from archiver.archive import Archive
from archiver.backup import run_backup
from archiver.devtools.sample_mail import generate_mailbox
from archiver.mail.headers import utc_now
from archiver.restore.plan import Scope, plan_restore, restore
from tests.integration.helpers import account_toml, load, run_cli, write_config

pytestmark = pytest.mark.integration

SPECIAL = [
    # (raw, flags, internaldate): no Message-ID, keywords, odd offsets, the same message twice in one folder
    (b"Subject: no id\r\n\r\nbody without a message-id\r\n", ("\\Seen", "$Work"), timedelta(hours=-5)),
    (b"Subject: no id\r\n\r\nbody without a message-id\r\n", ("\\Flagged",), timedelta(hours=-5)),
    (
        b"Message-ID: <twice@x>\r\nSubject: twice\r\n\r\nFrom the start\r\n>From quoted\r\n",
        ("\\Answered", "\\Draft"),
        timedelta(hours=5, minutes=30),
    ),
    (
        b"Message-ID: <twice@x>\r\nSubject: twice\r\n\r\nFrom the start\r\n>From quoted\r\n",
        (),
        timedelta(hours=5, minutes=30),
    ),
    (b"Message-ID: <del@x>\r\nSubject: deleted flag\r\n\r\nx\r\n", ("\\Deleted", "Junk_kw"), timedelta(0)),
]


def fill(dovecot, user, count: int, seed: int = 5, folders: int = 6) -> dict[str, list]:
    by_folder: dict[str, list] = defaultdict(list)
    for sample in generate_mailbox(count, seed=seed, folders=folders):
        by_folder[sample.folder].append((sample.raw, tuple(sample.flags), sample.internaldate))
    for i, (raw, flags, offset) in enumerate(SPECIAL):
        when = datetime(2019, 6, 1 + i, 12, 0, 0, tzinfo=timezone(offset))
        by_folder["Doomed/Ünïcode & more"].append((raw, flags, when))
    for folder, items in by_folder.items():
        dovecot.append_many(user.name, folder, items)
    return by_folder


def state(dovecot, user, folder) -> Counter:
    """Multiset of (sha256, flags without \\Recent, INTERNALDATE instant, its offset) of a server folder."""
    result: Counter = Counter()
    for raw, flags, when in dovecot.fetch_all(user.name, user.password, folder).values():
        names = frozenset(f.decode() if isinstance(f, bytes) else f for f in flags) - {"\\Recent"}
        result[(hashlib.sha256(raw).hexdigest(), names, when.astimezone(UTC), when.utcoffset())] += 1
    return result


@pytest.fixture
def backed_up(dovecot, mail_user, tmp_path):
    folders = fill(dovecot, mail_user, 60)
    before = {name: state(dovecot, mail_user, name) for name in folders}
    config = load(write_config(tmp_path, account_toml(dovecot, mail_user, name="acct")))
    with Archive(config.archive) as archive:
        assert run_backup(config, config.accounts[0], archive=archive).ok
    return config, before


def test_deleted_folder_restored_as_of_before_deletion(dovecot, mail_user, backed_up):
    config, before = backed_up
    doomed = "Doomed/Ünïcode & more"
    moment = utc_now().isoformat()
    client = dovecot.connect(mail_user.name, mail_user.password)
    client.delete_folder(doomed)
    client.logout()
    with Archive(config.archive) as archive:
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


def test_whole_account_into_second_account_under_prefix(dovecot, mail_user, backed_up, tmp_path):
    _config, before = backed_up
    from tests.conftest import MailUser

    other = MailUser(mail_user.name + "b", "pw-second")
    dovecot.add_user(other.name, other.password)
    path = write_config(
        tmp_path,
        account_toml(dovecot, mail_user, name="acct") + account_toml(dovecot, other, name="second"),
    )
    result = run_cli(path, "restore", "--account", "acct", "--to", "second", "--prefix", "Old/Mail", "--json")
    assert result.returncode == 0, result.stderr
    for folder, expected in before.items():
        assert state(dovecot, other, f"Old/Mail/{folder}") == expected, folder
    rerun = run_cli(path, "restore", "--account", "acct", "--to", "second", "--prefix", "Old/Mail")
    assert rerun.returncode == 0, rerun.stderr
    assert "appended 0," in rerun.stdout.splitlines()[-1]
    for folder, expected in before.items():
        assert state(dovecot, other, f"Old/Mail/{folder}") == expected, folder


def test_single_messages_by_blob_and_placement_id(dovecot, mail_user, backed_up):
    config, _ = backed_up
    with Archive(config.archive) as archive:
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
