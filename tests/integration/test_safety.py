"""A backup never changes the source mailbox: proven from the server's side, not through our own IMAP session.

The snapshot is taken without any IMAP session: first the Maildir message file names
(read from disk before Dovecot is asked anything; the flags live in the ``:2,`` suffix and
a message still in ``new/`` has not been seen by any client), then ``doveadm fetch`` (UID,
flags including ``\\Seen`` and ``\\Recent``, INTERNALDATE, save date, size, GUID) for every
message, ``doveadm mailbox status`` (messages, recent, unseen, UIDNEXT, UIDVALIDITY,
HIGHESTMODSEQ) and ``doveadm mailbox list`` for the folders, plus the bytes of Dovecot's
per-folder ``dovecot-uidlist`` and ``dovecot-keywords``.

What Dovecot itself changes, found by this test and excluded on purpose: its index and cache
files (``dovecot.index``, ``dovecot.index.log``, ``dovecot.index.cache``,
``dovecot.list.index*``).  They grow on every read, the snapshot's own ``doveadm`` calls
included (two snapshots in a row differ there and nowhere else): Dovecot caches header and
size fields it was asked for.  They are private caches that hold no mailbox state of their own
the snapshot does not also compare.  Checked facts on this Dovecot 2.3: EXAMINE does not move
files from ``new/`` to ``cur/``, does not clear ``\\Recent`` and does not raise HIGHESTMODSEQ.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from archiver.backup import run_backup
from tests.fixtures.config import parse_config
from tests.fixtures.mail_server import account_toml, fill_mailbox

pytestmark = [pytest.mark.integration]

DOVECOT_CACHES = ("dovecot.index", "dovecot.index.log", "dovecot.index.cache", "dovecot.list.index")
STATE_FILES = ("dovecot-uidlist", "dovecot-keywords", "subscriptions")


@dataclass(frozen=True)
class ServerState:
    message_files: tuple[str, ...]  # "<folder dir>/{cur,new}/<name>:2,<flags>"
    messages: str  # doveadm fetch, one record per message
    status: str  # doveadm mailbox status of every folder
    folders: tuple[str, ...]
    state_files: tuple[tuple[str, bytes], ...]  # dovecot-uidlist and friends, byte for byte
    caches: tuple[str, ...]  # Dovecot's index/cache files: listed only to show they are the part excluded


def snapshot(dovecot, user: str) -> ServerState:
    root = dovecot.maildir(user)
    files = [(path, path.relative_to(root)) for path in sorted(root.rglob("*")) if path.is_file()]
    message_files = tuple(str(rel) for _path, rel in files if rel.parent.name in ("cur", "new"))
    state_files = tuple((str(rel), path.read_bytes()) for path, rel in files if rel.name in STATE_FILES)
    caches = tuple(str(rel) for _path, rel in files if rel.name.startswith(DOVECOT_CACHES))
    fields = "mailbox uid guid flags date.received date.saved size.physical size.virtual"
    fetched = dovecot.doveadm("fetch", "-u", user, fields, "all")
    status = dovecot.doveadm(
        "mailbox", "status", "-u", user, "messages recent unseen uidnext uidvalidity highestmodseq", "*"
    )
    listed = dovecot.doveadm("mailbox", "list", "-u", user)
    for result in (fetched, status, listed):
        assert result.returncode == 0, result.stderr
    return ServerState(
        message_files=message_files,
        messages=fetched.stdout,
        status="\n".join(sorted(status.stdout.splitlines())),
        folders=tuple(sorted(listed.stdout.splitlines())),
        state_files=state_files,
        caches=caches,
    )


def assert_unchanged(before: ServerState, after: ServerState) -> None:
    assert after.message_files == before.message_files  # names carry the flags: nothing moved, nothing renamed
    assert after.messages == before.messages
    assert after.status == before.status
    assert after.folders == before.folders
    assert after.state_files == before.state_files


def _fill(dovecot, user, count: int, seed: int) -> None:
    fill_mailbox(dovecot, user, count, seed)


def test_backup_and_rerun_leave_the_server_exactly_as_it_was(dovecot, mail_user, tmp_path: Path, config_file):
    _fill(dovecot, mail_user, 120, seed=47)
    config = parse_config(config_file(account_toml(dovecot, mail_user), "batch_messages = 10"))
    (account,) = config.accounts

    before = snapshot(dovecot, mail_user.name)
    assert_unchanged(before, snapshot(dovecot, mail_user.name))  # the snapshot itself changes nothing it compares
    # The state holds what a careless client would change: unseen mail, \Recent, files still in new/.
    assert "\\Seen" in before.messages and "\\Recent" in before.messages
    assert any("/new/" in f"/{name}" for name in before.message_files)
    assert before.caches  # the excluded part exists (and is the only part that differs, see the docstring)

    report = run_backup(config, account, index=False)
    assert report.status == "ok" and report.messages_new == 120
    after_first = snapshot(dovecot, mail_user.name)
    assert_unchanged(before, after_first)

    # A second client changes the server (a flag, an expunge, a new message): the re-run takes the
    # CONDSTORE/QRESYNC path, and still changes nothing itself.
    client = dovecot.connect(mail_user.name, mail_user.password)
    try:
        client.select_folder("INBOX")
        uids = client.search(["ALL"])
        client.add_flags(uids[:1], [b"\\Flagged"])
        client.delete_messages(uids[1:2])
        client.expunge()
    finally:
        client.logout()
    dovecot.append(mail_user.name, "INBOX", b"Subject: late\r\nMessage-ID: <late@example>\r\n\r\nlate\r\n")
    changed = snapshot(dovecot, mail_user.name)
    report = run_backup(config, account, index=False)
    assert report.status == "ok" and report.messages_new == 1
    assert sum(f.flags_changed for f in report.folders) == 1 and sum(f.gone for f in report.folders) == 1
    assert_unchanged(changed, snapshot(dovecot, mail_user.name))

    report = run_backup(config, account, index=False)  # nothing new: the cheap STATUS path
    assert report.status == "ok" and all(f.unchanged for f in report.folders)
    assert_unchanged(changed, snapshot(dovecot, mail_user.name))
