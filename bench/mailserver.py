"""The benchmarks' server side: a generated mailbox in a private Dovecot, and mbsync pulling it.

Shared by the backup benches (run as ``python bench/NAME.py``, so this directory is on sys.path):
``fill`` streams seeded sample mail into the server, ``Mbsync`` is the baseline every backup figure
is compared with, and ``keep_mailbox`` / ``restore_mailbox`` let a bench with ``--dir D --reuse``
skip generating the same mailbox again (minutes at 100,000 messages).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from measure import run_child

from archiver.devtools.sample_mail import SampleMessage
from archiver.devtools.sandbox import DovecotSandbox

USER, PASSWORD = "bench", "bench-password"

#: Messages (or bytes) of one folder held before they are appended: memory stays flat at 100,000 messages.
FLUSH_MESSAGES, FLUSH_BYTES = 500, 32 << 20


def fill(sandbox: DovecotSandbox, messages: Iterable[SampleMessage]) -> tuple[int, int]:
    """APPEND ``messages`` to ``USER``'s folders (MULTIAPPEND batches, in order per folder).

    Returns (messages, raw bytes).  Dovecot then brings its index of every folder up to date, so
    the first client after a fill (whichever tool is measured first) does not pay for that.
    """
    pending: dict[str, list] = {}
    held: dict[str, int] = {}
    count = raw_bytes = 0
    for message in messages:
        pending.setdefault(message.folder, []).append((message.raw, message.flags, message.internaldate))
        held[message.folder] = held.get(message.folder, 0) + len(message.raw)
        count += 1
        raw_bytes += len(message.raw)
        if len(pending[message.folder]) >= FLUSH_MESSAGES or held[message.folder] >= FLUSH_BYTES:
            sandbox.append_many(USER, message.folder, pending.pop(message.folder))
            held[message.folder] = 0
    for folder, items in pending.items():
        sandbox.append_many(USER, folder, items)
    synced = sandbox.doveadm("mailbox", "status", "-u", USER, "messages", "*")
    if synced.returncode != 0:
        raise RuntimeError(f"doveadm mailbox status: {synced.stderr.strip()}")
    return count, raw_bytes


class Mbsync:
    """``mbsync`` (isync) pulling ``USER``'s mailbox into a Maildir: the backup benches' baseline.

    One Maildir (and its sync state) per instance: a first pull takes everything, a later one only
    what is new, as a user's cron job does.
    """

    def __init__(self, sandbox: DovecotSandbox, maildir: Path) -> None:
        self.maildir = maildir
        self.maildir.mkdir(parents=True)
        self.rc = maildir.parent / f"{maildir.name}.mbsyncrc"
        self.rc.write_text(f"""IMAPAccount bench
Host 127.0.0.1
Port {sandbox.imap_port}
User {USER}
Pass {PASSWORD}
SSLType None
AuthMechs LOGIN PLAIN

IMAPStore remote
Account bench

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel bench
Far :remote:
Near :local:
Patterns *
Create Near
Sync Pull
SyncState *
""")

    @staticmethod
    def installed() -> bool:
        return shutil.which("mbsync") is not None

    def remove(self) -> None:
        """Delete the Maildir and the config."""
        shutil.rmtree(self.maildir)
        self.rc.unlink()

    def pull(self, peaks: dict | None = None) -> tuple[float, int] | None:
        """(wall seconds, peak RSS KB) of one ``mbsync`` run; None when it failed (said on stderr)."""
        elapsed, rss, result = run_child(["mbsync", "-q", "-c", str(self.rc), "bench"], peaks=peaks)
        return (elapsed, rss) if result.returncode == 0 else None


def keep_mailbox(sandbox: DovecotSandbox, store: Path) -> None:
    """Keep the server's Maildir of ``USER`` (messages, Dovecot's uid lists and indexes) in ``store``."""
    _link_tree(sandbox.maildir(USER), store)


def restore_mailbox(sandbox: DovecotSandbox, store: Path) -> None:
    """Lay the Maildir kept by :func:`keep_mailbox` into a fresh, started sandbox before anyone logs in."""
    target = sandbox.maildir(USER)
    _link_tree(store, target)
    if os.getuid() == 0:  # Dovecot reads the home as the mail owner
        owner = sandbox.owner
        for directory, subdirs, files in os.walk(target.parent):
            os.chown(directory, owner.uid, owner.gid)
            for name in subdirs + files:
                os.chown(Path(directory) / name, owner.uid, owner.gid, follow_symlinks=False)


def _link_tree(source: Path, target: Path) -> None:
    """A copy of a Maildir whose message files are hard links, which costs no disk at 100,000 messages.

    Safe for the benches: Dovecot never rewrites a message file (a flag change renames it, an
    APPEND writes a new one), while it updates its own index files in place, so these are copied.
    """
    for directory, _subdirs, files in os.walk(source):
        relative = Path(directory).relative_to(source)
        (target / relative).mkdir(parents=True, exist_ok=True)
        for name in files:
            original, copy = Path(directory) / name, target / relative / name
            if relative.name in ("cur", "new"):
                os.link(original, copy)
            else:
                shutil.copy2(original, copy)
