"""Carry out a restore plan: one IMAP connection, folder by folder; what goes wrong lands in the report.

The plan (:mod:`archiver.restore.plan`) says what goes where and holds the contract; the IMAP side
(:mod:`archiver.restore.imap_target`) does the writing.  This module only joins the two, so
neither imports the other's caller.
"""

from __future__ import annotations

import logging
import time

from archiver.archive import Archive
from archiver.config import AccountConfig
from archiver.errors import ArchiverError, RestoreError
from archiver.progress import Progress
from archiver.restore.imap_target import ImapTarget
from archiver.restore.plan import FolderReport, RestorePlan, RestoreReport, plan_items, plan_restore
from archiver.scope import Scope

log = logging.getLogger("archiver.restore")


def execute_restore(
    archive: Archive,
    plan: RestorePlan,
    target: AccountConfig,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> RestoreReport:
    """Carry out a plan against ``target`` (an IMAP account); server problems land in the report."""
    if target.protocol != "imap":
        raise RestoreError(f"{target.name}: can only restore into an IMAP account (protocol is {target.protocol!r})")
    progress = progress or Progress()
    report = RestoreReport(target=target.name, dry_run=dry_run)
    started = time.monotonic()
    imap = ImapTarget(target, archive, progress)
    try:
        imap.connect()
        for folder_plan, items in plan_items(archive.catalog, plan):
            folder_report = FolderReport(folder_plan.source, imap.mailbox(folder_plan.target_parts))
            report.folders.append(folder_report)
            try:
                imap.restore_folder(folder_report, items, dry_run)
            except ArchiverError as exc:
                # what the folder did not get counts as failed: the summary line must not say "failed 0"
                folder_report.failed = len(items) - folder_report.appended - folder_report.skipped
                message = f"{folder_report.target}: {exc}"
                report.problems.append(message)
                log.error("restore into %s failed: %s", folder_report.target, exc)
                imap.reconnect_if_needed()
    except ArchiverError as exc:
        report.problems.append(str(exc))
    finally:
        imap.close()
        report.seconds = time.monotonic() - started
    return report


def restore(
    archive: Archive,
    scope: Scope,
    target: AccountConfig,
    prefix: str | None = None,
    in_place: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> RestoreReport:
    """Plan and execute in one call."""
    plan = plan_restore(archive.catalog, scope, prefix=prefix, in_place=in_place)
    return execute_restore(archive, plan, target, dry_run=dry_run, progress=progress)
