"""UIDVALIDITY resets against a real Dovecot: old placements kept (gone since the run), new UIDs re-mapped
onto the same blobs by header fingerprint, only unmatched messages downloaded."""

from __future__ import annotations

import json

import pytest

from archiver.backup import run_backup
from archiver.devtools.sample_mail import generate_mailbox
from archiver.verify import verify_archive
from tests.fixtures.archives import archived_hashes
from tests.fixtures.config import parse_config
from tests.fixtures.mail_server import account_toml, server_hashes
from tests.fixtures.uidvalidity import (
    FOLDER,
    reset_by_losing_the_uidlist,
    reset_by_recreating_the_folder,
    reset_with_doveadm,
    time_passes,
    uidvalidity,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "reset",
    [reset_with_doveadm, reset_by_losing_the_uidlist, reset_by_recreating_the_folder],
    ids=["doveadm", "uidlist", "recreated"],
)
def test_uidvalidity_reset_redownloads_only_what_does_not_match(
    dovecot, mail_user, tmp_path, reset, config_file, cli, open_archive
):
    samples = list(generate_mailbox(300, seed=21, folders=4, duplicate_ratio=0.02))
    uids = dovecot.append_many(mail_user.name, FOLDER, [(s.raw, s.flags, s.internaldate) for s in samples])
    config = parse_config(config_file(account_toml(dovecot, mail_user), "batch_messages = 50"))
    account = config.accounts[0]
    with open_archive(config) as archive:
        first = run_backup(config, account, archive=archive)
        assert first.ok, first.problems
        old = {row[0]: row[1] for row in archive.catalog.db.execute("SELECT uid, blob_id FROM placements")}
        old_uidvalidity = uidvalidity(dovecot, mail_user)

        # Between the runs: two messages expunged, one flag changed, two new messages.
        client = dovecot.connect(mail_user.name)
        client.select_folder(FOLDER)
        client.add_flags(uids[:1], [b"\\Flagged"])
        client.delete_messages(uids[-2:])
        client.expunge()
        client.logout()
        fresh = [
            b"Message-ID: <fresh-1@x>\r\nSubject: new one\r\n\r\nnew body\r\n",
            b"Subject: no id at all\r\n\r\nanother\r\n",
        ]
        dovecot.append_many(mail_user.name, FOLDER, [(raw, (), None) for raw in fresh])
        time_passes(1.1)
        reset(dovecot, mail_user)
        assert uidvalidity(dovecot, mail_user) != old_uidvalidity

        second = run_backup(config, account, archive=archive)
        assert second.ok, second.problems
        folder_bytes = sum(len(raw) for raw, _f, _d in dovecot.fetch_all(mail_user.name, None, FOLDER).values())
        assert second.bytes_fetched == sum(len(raw) for raw in fresh)  # only the two that match nothing
        assert second.bytes_fetched < 0.05 * folder_bytes
        assert second.blobs_new == 2
        outcome = next(f for f in second.folders if f.name == FOLDER)
        assert outcome.adopted == 298 and outcome.new == 300
        assert outcome.gone == 300  # every old placement, gone since this run, history kept

        # The catalog equals the server, under the new UIDVALIDITY, and points at the old blobs.
        assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, [FOLDER])
        flags_now = {
            row.uid: set(row.flags)
            for row in archive.catalog.placements_as_of(archive.catalog.account_id("acct"), FOLDER)
        }
        on_server = {
            uid: {f.decode() for f in flags if f != b"\\Recent"}
            for uid, (_r, flags, _d) in dovecot.fetch_all(mail_user.name, None, FOLDER).items()
        }
        assert flags_now == on_server
        old_rows = archive.catalog.db.execute(
            "SELECT uid, blob_id, gone_since_run FROM placements WHERE uidvalidity = ?", (old_uidvalidity,)
        ).fetchall()
        assert {row[0]: row[1] for row in old_rows} == old
        assert {row[2] for row in old_rows} == {second.run_id}
        third = run_backup(config, account, archive=archive)
        assert third.ok and third.bytes_fetched == 0 and all(f.unchanged for f in third.folders)
        assert verify_archive(archive).ok

    # After run 1 the folder was its old self: old UIDs, old flags.
    listed = cli(
        tmp_path / "archiver.toml", "ls", "--account", "acct", "--run", str(first.run_id), "--folder", FOLDER, "--json"
    )
    (folder,) = json.loads(listed.stdout)["folders"]
    assert {m["uid"]: m["blob_id"] for m in folder["messages"]} == old
