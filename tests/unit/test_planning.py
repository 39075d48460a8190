"""Pure decisions of a backup run: batching and the STATUS short-circuit."""

from __future__ import annotations

from archiver.backup.imap import folder_unchanged
from archiver.backup.runner import plan_batches
from archiver.catalog import FolderRecord
from archiver.sources.imap import uid_ranges
from archiver.sources.model import FolderStatus


def test_batches_respect_bytes_and_count():
    uids = list(range(1, 11))
    sizes = {uid: 100 for uid in uids} | {5: 10_000}
    batches = list(plan_batches(uids, sizes, max_bytes=350, max_messages=3))
    assert [uid for batch in batches for uid in batch] == uids
    assert all(len(b) <= 3 for b in batches)
    assert [5] in batches  # a message larger than the bound goes alone


def test_uid_ranges_compacts():
    assert uid_ranges([5, 1, 2, 3, 9, 12, 13, 14]) == "1:3,5,9,12:14"
    assert uid_ranges([]) == ""
    assert uid_ranges([7]) == "7"


def _record(**kw):
    base = dict(
        id=1,
        account_id=1,
        name="INBOX",
        delimiter="/",
        special_use=None,
        uidvalidity=7,
        uidnext=100,
        highestmodseq=50,
        server_messages=90,
        gone_since_run=None,
    )
    return FolderRecord(**(base | kw))


def test_unchanged_only_when_every_counter_matches():
    status = FolderStatus(uidvalidity=7, uidnext=100, messages=90, highestmodseq=50)
    assert folder_unchanged(_record(), status)
    assert not folder_unchanged(_record(uidnext=99), status)
    assert not folder_unchanged(_record(uidvalidity=8), status)
    assert not folder_unchanged(_record(highestmodseq=49), status)  # flags changed
    assert not folder_unchanged(_record(server_messages=91), status)  # an expunge
    assert not folder_unchanged(_record(uidvalidity=None, uidnext=None), status)  # never synced
