"""One backup run of one account: server -> blob store -> catalog, for IMAP and POP3.

:func:`run_backup` is the one entry point (the CLI, the daemon's child and the web UI call it).
The run's skeleton is :mod:`archiver.backup.runner`; what is particular to a protocol is in
:mod:`archiver.backup.imap` and :mod:`archiver.backup.pop3`.  The decision logic (what is new,
what moved, what the server deleted) is pure functions over plain data, unit-tested without a
server; the few writes go through the catalog.
"""

from __future__ import annotations

from archiver.archive import Archive
from archiver.backup.imap import ImapBackup
from archiver.backup.indexing import IndexOutcome, update_search_index
from archiver.backup.pop3 import Pop3Backup
from archiver.backup.report import FolderOutcome, RunReport
from archiver.backup.runner import RunFactory, run_account
from archiver.backup.snapshot import snapshot_after_run
from archiver.config import AccountConfig, Config
from archiver.progress import Progress

#: The run of each protocol an account may have (``protocol`` in the config).
SOURCE_RUNS: dict[str, RunFactory] = {"imap": ImapBackup, "pop3": Pop3Backup}


def run_backup(
    config: Config,
    account: AccountConfig,
    progress: Progress | None = None,
    archive: Archive | None = None,
    index: bool = True,
) -> RunReport:
    """Back up one account; never raises for server problems, they land in the report.

    With ``index=False`` the search index is left for the caller (the CLI indexes once after
    several accounts) or the next run: it bookmarks the catalog state it reflects, so nothing is missed.
    ``archive``: an open archive to use (else one is opened and closed for the run).
    """
    return run_account(config, account, SOURCE_RUNS.get(account.protocol), progress, archive, index)


__all__ = [
    "SOURCE_RUNS",
    "FolderOutcome",
    "ImapBackup",
    "IndexOutcome",
    "Pop3Backup",
    "Progress",
    "RunReport",
    "run_backup",
    "snapshot_after_run",
    "update_search_index",
]
