"""Sync fidelity against a real Dovecot: flags and their history, expunges, deleted and renamed folders,
copies across folders, and ``archiver ls`` as of a run."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from archiver.backup import ImapBackup, run_backup
from archiver.devtools.sample_mail import generate_mailbox
from archiver.sources.imap import ImapSource
from archiver.verify import verify_archive
from tests.fixtures.archives import archived_hashes
from tests.fixtures.config import parse_config
from tests.fixtures.mail_server import account_toml, fill_mailbox, server_hashes

pytestmark = pytest.mark.integration


def fill(dovecot, user, count: int, seed: int = 11, folders: int = 5) -> dict[str, list[int]]:
    return fill_mailbox(dovecot, user, count, seed, folders=folders, duplicate_ratio=0)


def server_flags(dovecot, user, folder: str) -> dict[int, set[str]]:
    return {
        uid: {f.decode() for f in flags if f != b"\\Recent"}
        for uid, (_raw, flags, _date) in dovecot.fetch_all(user.name, user.password, folder).items()
    }


def server_folders(dovecot, user) -> list[str]:
    client = dovecot.connect(user.name)
    try:
        return sorted(name for flags, _d, name in client.list_folders() if b"\\Noselect" not in flags)
    finally:
        client.logout()


def catalog_flags(catalog, folder: str, run_id: int | None = None) -> dict[int, set[str]]:
    account_id = catalog.account_id("acct")
    return {row.uid: set(row.flags) for row in catalog.placements_as_of(account_id, folder, run_id)}


@pytest.fixture(params=["qresync", "uid-sets", "no-condstore"])
def sync_path(request, monkeypatch):
    """Run each test over QRESYNC (Dovecot offers it), the UID-set fallback with CONDSTORE, and as if the
    server offered neither (the client ignores the capabilities; the server is the same real Dovecot)."""
    if request.param == "uid-sets":
        original = ImapBackup.__init__

        def without_qresync(self, *args, **kwargs):
            original(self, *args, **kwargs)
            self.use_qresync = False

        monkeypatch.setattr(ImapBackup, "__init__", without_qresync)
    elif request.param == "no-condstore":
        connect = ImapSource.connect

        def connect_ignoring_condstore(self):
            connect(self)
            self.capabilities = self.capabilities - {"CONDSTORE", "QRESYNC"}
            return self

        monkeypatch.setattr(ImapSource, "connect", connect_ignoring_condstore)
    return request.param


def test_flag_changes_and_expunges_follow_the_server_with_history(
    dovecot, mail_user, tmp_path, sync_path, config_file, cli, open_archive
):
    uids = fill(dovecot, mail_user, 60)
    config = parse_config(config_file(account_toml(dovecot, mail_user)))
    account = config.accounts[0]
    inbox = uids["INBOX"]
    with open_archive(config) as archive:
        first = run_backup(config, account, archive=archive)
        assert first.ok, first.problems
        before = catalog_flags(archive.catalog, "INBOX")
        assert before == server_flags(dovecot, mail_user, "INBOX")

        client = dovecot.connect(mail_user.name)
        client.select_folder("INBOX")
        client.add_flags(inbox[:3], [b"\\Flagged", b"$Later"])
        client.remove_flags(inbox[3:5], [b"\\Seen"])
        client.add_flags(inbox[5:6], [b"\\Seen"])
        client.delete_messages(inbox[-2:])
        client.expunge()
        client.logout()

        second = run_backup(config, account, archive=archive)
        assert second.ok, second.problems
        outcome = next(f for f in second.folders if f.name == "INBOX")
        assert outcome.gone == 2
        assert outcome.new == 0 and second.bytes_fetched == 0
        now = catalog_flags(archive.catalog, "INBOX")
        assert now == server_flags(dovecot, mail_user, "INBOX")
        changed = {uid for uid in now if now[uid] != before[uid]}
        assert changed and changed <= set(inbox[:6])
        assert outcome.flags_changed == len(changed)
        # History: after run 1 the flags were the old ones, and the expunged messages were still there.
        assert catalog_flags(archive.catalog, "INBOX", first.run_id) == before
        gone = archive.catalog.db.execute(
            "SELECT uid, gone_since_run FROM placements WHERE gone_since_run IS NOT NULL"
        ).fetchall()
        assert {(row[0], row[1]) for row in gone} == {(uid, second.run_id) for uid in inbox[-2:]}
        # The blobs of expunged messages are kept.
        for row in archive.catalog.db.execute("SELECT blob_id FROM placements WHERE gone_since_run IS NOT NULL"):
            assert archive.store.get(row[0])

        third = run_backup(config, account, archive=archive)
        assert third.ok and third.bytes_fetched == 0 and third.messages_new == 0
        assert sum(f.flags_changed + f.gone for f in third.folders) == 0
        # Without CONDSTORE, STATUS cannot show a flag change, so every folder is looked at again.
        assert all(f.unchanged for f in third.folders) == (sync_path != "no-condstore")
        assert verify_archive(archive).ok
        first_ended = archive.catalog.run(first.run_id)["ended_at"]

    # ``ls --as-of`` a moment between the runs shows the flags and messages of then.
    path = tmp_path / "archiver.toml"
    listed = cli(path, "ls", "--account", "acct", "--folder", "INBOX", "--as-of", first_ended, "--json")
    assert listed.returncode == 0, listed.stderr
    (folder,) = json.loads(listed.stdout)["folders"]
    assert {m["uid"]: set(m["flags"]) for m in folder["messages"]} == before


def test_deleted_and_renamed_folders_are_kept_and_renames_reuse_blobs(
    dovecot, mail_user, tmp_path, sync_path, config_file, cli, open_archive
):
    uids = fill(dovecot, mail_user, 80, folders=4)
    folders = sorted(uids)
    victim, renamed = [f for f in folders if f != "INBOX"][:2]
    config = parse_config(config_file(account_toml(dovecot, mail_user)))
    account = config.accounts[0]
    with open_archive(config) as archive:
        listed_before = server_folders(dovecot, mail_user)
        first = run_backup(config, account, archive=archive)
        assert first.ok, first.problems
        blobs_before = set(archive.store.iter_ids())
        client = dovecot.connect(mail_user.name)
        client.delete_folder(victim)
        client.rename_folder(renamed, "Moved Here")
        client.logout()

        second = run_backup(config, account, archive=archive)
        assert second.ok, second.problems
        # Nothing was downloaded for the renamed folder: its messages were recognised by fingerprint.
        assert second.bytes_fetched == 0 and second.blobs_new == 0
        moved = next(f for f in second.folders if f.name == "Moved Here")
        assert moved.new == moved.adopted == len(uids[renamed])
        assert set(archive.store.iter_ids()) == blobs_before
        after = set(server_folders(dovecot, mail_user))
        assert victim not in after and "Moved Here" in after
        assert archived_hashes(archive.catalog) == {
            **{key: value for key, value in archived_hashes(archive.catalog).items() if key[0] in (victim, renamed)},
            **server_hashes(dovecot, mail_user, sorted(after)),
        }
        records = archive.catalog.folders(archive.catalog.account_id("acct"))
        assert records[victim].gone_since_run == second.run_id
        assert records[renamed].gone_since_run == second.run_id
        # The deleted folder's messages are still there, as its last known content.
        assert len(catalog_flags(archive.catalog, victim)) == len(uids[victim])
        assert verify_archive(archive).ok

    path = tmp_path / "archiver.toml"
    now = json.loads(cli(path, "ls", "--account", "acct", "--json").stdout)
    assert {f["name"] for f in now["folders"]} == after
    with_gone = json.loads(cli(path, "ls", "--account", "acct", "--include-gone", "--json").stdout)
    gone = {f["name"]: f for f in with_gone["folders"] if f["gone"]}
    assert set(gone) == {victim, renamed}
    assert len(gone[victim]["messages"]) == len(uids[victim])
    then = json.loads(cli(path, "ls", "--account", "acct", "--run", str(first.run_id), "--json").stdout)
    assert {f["name"] for f in then["folders"]} == set(listed_before)
    assert all(not f["gone"] for f in then["folders"])
    text = cli(path, "ls", "--account", "acct", "--folder", victim)
    assert text.returncode == 0 and "gone since run" in text.stdout


def test_copies_in_label_like_folders_are_not_downloaded_again(dovecot, mail_user, tmp_path, config_file, archive):
    """Dovecot has no X-GM-EXT-1: copies of a message in label folders are found by fingerprint instead."""
    samples = list(generate_mailbox(50, seed=3, folders=1, duplicate_ratio=0))
    inbox = dovecot.append_many(mail_user.name, "INBOX", [(s.raw, s.flags, s.internaldate) for s in samples])
    client = dovecot.connect(mail_user.name)
    for label, picked in (("Labels/Work", inbox[:20]), ("Labels/Important", inbox[10:40])):
        client.create_folder(label)
        client.select_folder("INBOX")
        client.copy(picked, label)  # IMAP COPY keeps INTERNALDATE, as Gmail labels share it
    client.logout()
    config = parse_config(config_file(account_toml(dovecot, mail_user)))
    report = run_backup(config, config.accounts[0], archive=archive)
    assert report.ok, report.problems
    unique_bytes = sum(len(s.raw) for s in samples)
    assert report.bytes_fetched == unique_bytes  # each message's bytes once, the copies ~0
    assert report.blobs_new == 50 and report.messages_new == 100
    # Whichever folder the server lists first is downloaded; every later copy is recognised.
    assert sum(f.adopted for f in report.folders) == 50
    assert sum(f.stub_bytes for f in report.folders) < 0.01 * unique_bytes
    folders = ["INBOX", "Labels/Work", "Labels/Important"]
    assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, folders)
    flags = catalog_flags(archive.catalog, "Labels/Work")
    assert flags == server_flags(dovecot, mail_user, "Labels/Work")


def test_vanished_of_one_folder_never_marks_another(dovecot, mail_user, tmp_path, config_file):
    """An expunge reported while folder A is open must not be read as an expunge in folder B."""
    for folder in ("A", "B"):
        dovecot.append_many(
            mail_user.name, folder, [(f"Subject: {i}\r\n\r\nx\r\n".encode(), (), None) for i in range(3)]
        )
    config = parse_config(config_file(account_toml(dovecot, mail_user)))
    source = ImapSource(config.accounts[0]).connect()
    try:
        source.enable_qresync()
        status_b = source.status("B")
        source.examine("A")
        other = dovecot.connect(mail_user.name)
        other.select_folder("A")
        other.delete_messages([1])
        other.expunge()
        other.logout()
        source.client.noop()  # the server tells this session about the expunge in A
        assert source.client._imap.untagged_responses.get("VANISHED")  # the scenario is real
        source.forget_vanished()
        source.examine("B")
        changes = source.changes_since(status_b.highestmodseq)
        assert changes.vanished == set()
    finally:
        source.close()


def test_folder_deleted_then_recreated_keeps_its_gone_interval(dovecot, mail_user, tmp_path, config_file, archive):
    """A folder deleted and later re-created under the same name: as of the runs in between it is empty,
    as of before the deletion it has its old content, and a message that comes back is not downloaded."""
    old = [f"Subject: old {n}\r\nMessage-ID: <old-{n}@example.org>\r\n\r\nbody {n}\r\n".encode() for n in range(6)]
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)  # fixed: a restore brings a message back with its INTERNALDATE
    for raw in old:
        dovecot.append(mail_user.name, "Projects", raw, internaldate=when)
    config = parse_config(config_file(account_toml(dovecot, mail_user)))
    account = config.accounts[0]
    first = run_backup(config, account, archive=archive)
    client = dovecot.connect(mail_user.name)
    client.delete_folder("Projects")
    client.logout()
    second = run_backup(config, account, archive=archive)
    fresh = b"Subject: new\r\nMessage-ID: <new@example.org>\r\n\r\nnew body\r\n"
    dovecot.append(mail_user.name, "Projects", fresh)
    dovecot.append(mail_user.name, "Projects", old[0], internaldate=when)  # one old message comes back (restored)
    third = run_backup(config, account, archive=archive)
    assert first.ok and second.ok and third.ok, third.problems
    assert third.bytes_fetched == len(fresh)  # the returning message was recognised, not downloaded

    catalog = archive.catalog
    account_id = catalog.account_id("acct")

    def subjects(run_id: int | None) -> list[str]:
        rows = catalog.placements_as_of(account_id, "Projects", run_id)
        return sorted(catalog.hit_details([r.blob_id])[r.blob_id]["subject"] for r in rows)

    assert subjects(first.run_id) == [f"old {n}" for n in range(6)]
    assert subjects(second.run_id) == []  # deleted on the server then
    assert subjects(third.run_id) == subjects(None) == ["new", "old 0"]
    assert catalog.folders(account_id)["Projects"].gone_since_run is None
    assert verify_archive(archive).ok


def test_a_big_new_folder_is_sampled_and_a_renamed_one_fully_recognised(
    dovecot, mail_user, tmp_path, config_file, archive
):
    """A first-time folder of >= 256 new UIDs gets a 64-UID header look first: mostly new mail -> no full look
    (its few copies are downloaded, stored once); a renamed folder's sample is all known -> the full look."""
    from archiver.backup.remap import SAMPLE_FROM, STUB_SAMPLE

    samples = [s for s in generate_mailbox(700, seed=21, folders=1, duplicate_ratio=0) if len(s.raw) < 50_000][:600]
    inbox = dovecot.append_many(mail_user.name, "INBOX", [(s.raw, s.flags, s.internaldate) for s in samples[:300]])
    config = parse_config(config_file(account_toml(dovecot, mail_user)))
    assert run_backup(config, config.accounts[0], archive=archive).ok
    new = samples[300:]
    dovecot.append_many(mail_user.name, "Projects", [(s.raw, s.flags, s.internaldate) for s in new])
    client = dovecot.connect(mail_user.name)
    client.select_folder("INBOX")
    client.copy(inbox[:10], "Projects")  # a few copies of archived mail among 300 new messages
    client.logout()
    assert len(new) + 10 >= SAMPLE_FROM

    second = run_backup(config, config.accounts[0], archive=archive)
    assert second.ok, second.problems
    (projects,) = [f for f in second.folders if f.name == "Projects"]
    assert projects.new == 310 and projects.adopted < 10  # only copies that fell in the sample
    header_look = max(len(s.raw.split(b"Message-ID:")[1].split(b"\r\n")[0]) for s in samples) + 20
    assert projects.stub_bytes <= STUB_SAMPLE * header_look  # the sample only, not 310 headers
    assert second.blobs_new == 300  # the downloaded copies were stored once, by hash
    assert archived_hashes(archive.catalog) == server_hashes(dovecot, mail_user, ["INBOX", "Projects"])

    client = dovecot.connect(mail_user.name)
    client.rename_folder("Projects", "Projects 2020")
    client.logout()
    third = run_backup(config, config.accounts[0], archive=archive)
    assert third.ok, third.problems
    (renamed,) = [f for f in third.folders if f.name == "Projects 2020"]
    assert renamed.new == renamed.adopted == 310  # recognised in full: nothing downloaded
    assert third.bytes_fetched == 0 and third.blobs_new == 0
    archived = archived_hashes(archive.catalog)  # the old name's placements stay, gone since this run
    assert {k: v for k, v in archived.items() if k[0] != "Projects"} == server_hashes(
        dovecot, mail_user, ["INBOX", "Projects 2020"]
    )
    assert verify_archive(archive).ok
