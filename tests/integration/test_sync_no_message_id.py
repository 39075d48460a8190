"""UIDVALIDITY resets of a folder full of messages without Message-ID, against a real Dovecot.

They are re-mapped by their whole header section (confirmed against the stored bytes), size and
INTERNALDATE, so under 1 % of the folder's bytes is downloaded again; and the archive stays exact:
every placement's stored bytes hash to what the server holds under that UID, including two distinct
messages built to share header, size and INTERNALDATE (doubt: both downloaded, neither mixed up).
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime

import pytest

from archiver.archive import Archive
from archiver.backup import run_backup
from archiver.devtools.sample_mail import generate_mailbox, without_message_id
from archiver.verify import verify_archive
from tests.fixtures.config import parse_config
from tests.fixtures.mail_server import account_toml
from tests.fixtures.uidvalidity import (
    FOLDER,
    reset_by_losing_the_uidlist,
    reset_by_recreating_the_folder,
    reset_with_doveadm,
    time_passes,
    uidvalidity,
)

pytestmark = pytest.mark.integration

WHEN = datetime(2019, 5, 6, 7, 8, 9, tzinfo=UTC)
# Two different messages with the same header bytes, the same size and the same INTERNALDATE: no
# fingerprint can tell them apart, so neither may be adopted (one would then point at the other's bytes).
TWINS = [
    b"From: robot@example.org\r\nSubject: nightly report\r\n\r\nall jobs ok: 17 of 17\r\n",
    b"From: robot@example.org\r\nSubject: nightly report\r\n\r\nall jobs ok: 16 of 16\r\n",
]


def stored_hashes(archive: Archive) -> dict[int, str]:
    """sha256 of the bytes the store returns for every present placement of the folder, by UID."""
    rows = archive.catalog.db.execute(
        "SELECT p.uid, p.blob_id FROM placements p JOIN folders f ON f.id = p.folder_id "
        "WHERE f.name = ? AND p.gone_since_run IS NULL",
        (FOLDER,),
    )
    return {uid: hashlib.sha256(archive.store.get(blob_id, verify=False)).hexdigest() for uid, blob_id in rows}


def on_server(dovecot, user) -> dict[int, tuple[str, int]]:
    """uid → (sha256, size) of every message of the folder on the server."""
    return {
        uid: (hashlib.sha256(raw).hexdigest(), len(raw))
        for uid, (raw, _flags, _date) in dovecot.fetch_all(user.name, None, FOLDER).items()
    }


@pytest.mark.parametrize(
    "reset",
    [reset_with_doveadm, reset_by_losing_the_uidlist, reset_by_recreating_the_folder],
    ids=["doveadm", "uidlist", "recreated"],
)
def test_reset_of_a_folder_without_message_ids_redownloads_under_one_percent(
    dovecot, mail_user, tmp_path, reset, config_file, open_archive
):
    rng = random.Random(12)
    items = []
    for sample in generate_mailbox(400, seed=22, folders=4, duplicate_ratio=0.03):
        raw = without_message_id(sample.raw) if rng.random() < 0.6 else sample.raw
        items.append((raw, sample.flags, sample.internaldate))
    items += [(twin, (), WHEN) for twin in TWINS]
    dovecot.append_many(mail_user.name, FOLDER, items)
    assert sum(b"Message-ID:" not in raw for raw, _f, _d in items) > 200
    config = parse_config(config_file(account_toml(dovecot, mail_user), "batch_messages = 50"))
    account = config.accounts[0]
    with open_archive(config) as archive:
        first = run_backup(config, account, archive=archive)
        assert first.ok, first.problems
        before = uidvalidity(dovecot, mail_user)
        fresh = b"From: someone@example.org\r\nSubject: new after the backup, no id\r\n\r\nfresh\r\n"
        dovecot.append_many(mail_user.name, FOLDER, [(fresh, (), WHEN)])
        time_passes(1.1)
        reset(dovecot, mail_user)
        assert uidvalidity(dovecot, mail_user) != before

        second = run_backup(config, account, archive=archive)
        assert second.ok, second.problems
        server = on_server(dovecot, mail_user)
        folder_bytes = sum(size for _sha, size in server.values())
        # Downloaded again: the message new since the backup, and the twins nothing can tell apart.
        assert second.bytes_fetched == len(fresh) + sum(len(t) for t in TWINS)
        assert second.bytes_fetched < 0.01 * folder_bytes
        assert second.blobs_new == 1
        outcome = next(f for f in second.folders if f.name == FOLDER)
        assert outcome.adopted == len(items) - len(TWINS)
        # Exact: every placement's stored bytes are the server's bytes under that UID.
        assert stored_hashes(archive) == {uid: sha for uid, (sha, _size) in server.items()}
        assert verify_archive(archive).ok
        third = run_backup(config, account, archive=archive)
        assert third.ok and third.bytes_fetched == 0
