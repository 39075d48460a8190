"""Restore archived mail into an IMAP account: byte exact, original flags and INTERNALDATE, idempotent.

Library API (what ``archiver restore`` and the web UI call; plain data in, a report out)::

    scope = Scope(account="work", folders=("Projects/2023",), as_of="2026-11-20")
    plan = plan_restore(archive.catalog, scope, prefix=None, in_place=False)   -> RestorePlan
        RestorePlan.folders: FolderPlan(source, target_parts, messages, bytes); .messages, .bytes
    report = execute_restore(archive, plan, target_account, dry_run=False, progress=None)  -> RestoreReport
        RestoreReport.folders: FolderReport(source, target, planned, appended, skipped, failed,
                                            bytes, created, failures, refused_flags); .ok, .problems
    restore(archive, scope, target_account, prefix=None, in_place=False, dry_run=False) -> RestoreReport

``Scope`` (shared with :mod:`archiver.files.export`) names what to take: one or more messages (blob ids or
placement ids), folders, or a whole account, now or as of a date or run (see :func:`select_items`).

How a folder is restored (one connection, :mod:`archiver.restore.imap_target` does the IMAP side):

1. the target folder name is the source path (split on the source's hierarchy delimiter) under the
   prefix (default ``Restored/<date>``, the as-of date or today), joined with the target's own
   delimiter; folders are created level by level, names sent modified-UTF-7 encoded by imapclient;
2. what the folder already holds is matched against the plan: candidates by (Message-ID, size), or
   (size, INTERNALDATE) for messages without a Message-ID, then confirmed by sha256 of the bytes.
   A target copy satisfies one planned copy, so a folder that held a message twice gets it twice,
   and an interrupted restore run again appends only what is missing;
3. the rest is APPENDed in batches (MULTIAPPEND when offered: one round trip per batch) with the
   stored bytes (hash verified on read), the original flags minus ``\\Recent`` and those outside
   PERMANENTFLAGS or not valid IMAP atoms (reported), and the original INTERNALDATE with its offset
   (a message archived without one, e.g. from POP3, gets its Date header). A refused batch is
   retried message by message so one bad message does not fail its neighbours; a message refused
   with keywords is appended with its system flags, then each keyword is STOREd, and those the
   server refuses (Dovecot: longer than 50 characters) are reported, not the message failed.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from datetime import time as dtime

from archiver.archive import Archive
from archiver.catalog import Catalog, PlacementRow
from archiver.config import AccountConfig
from archiver.errors import ArchiverError, RestoreError
from archiver.mail.headers import utc_now
from archiver.names import folder_parts, split_folder, unique_name
from archiver.store.local import is_blob_id

log = logging.getLogger("archiver.restore")

DEFAULT_PREFIX = "Restored/{date}"


@dataclass(frozen=True)
class Scope:
    """What to restore or export.  ``messages`` alone may omit ``account``; else it is required.

    ``messages``: blob ids (64 hex) or placement ids (digits).  ``folders``: decoded folder names as
    ``archiver status`` shows them.  Neither: the whole account.  ``as_of``: an ISO 8601 date or
    date-time (a bare date means the end of that day, local time); ``run_id``: state after that run.
    """

    account: str | None = None
    folders: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    as_of: str | None = None
    run_id: int | None = None


@dataclass(frozen=True)
class Item:
    """One message to restore or export: a placement with what APPEND needs."""

    placement_id: int
    blob_id: str
    folder: str
    delimiter: str | None
    flags: tuple[str, ...]
    internaldate: str | None
    size: int
    message_id: str | None
    subject: str | None = None
    date: str | None = None  # the Date header (ISO 8601), when it parses

    @property
    def arrival(self) -> str | None:
        """The INTERNALDATE to restore: the original, else (POP3 has none) the Date header, else None."""
        return self.internaldate or self.date


@dataclass(frozen=True)
class FolderPlan:
    source: str
    source_delimiter: str | None
    target_parts: tuple[str, ...]
    messages: int
    bytes: int

    def target_name(self, delimiter: str | None) -> str:
        return target_mailbox(self.target_parts, delimiter)


@dataclass(frozen=True)
class RestorePlan:
    """A resolved scope: which folders, how many messages, where they go (target parts, delimiter-free)."""

    scope: Scope
    account_id: int | None
    run_id: int | None
    folders: tuple[FolderPlan, ...]

    @property
    def messages(self) -> int:
        return sum(f.messages for f in self.folders)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.folders)


@dataclass
class FolderReport:
    source: str
    target: str
    planned: int = 0
    appended: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    created: bool = False
    failures: list[str] = field(default_factory=list)
    refused_flags: set[str] = field(default_factory=set)


@dataclass
class RestoreReport:
    target: str
    dry_run: bool = False
    folders: list[FolderReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and not any(f.failed for f in self.folders)

    @property
    def appended(self) -> int:
        return sum(f.appended for f in self.folders)

    @property
    def skipped(self) -> int:
        return sum(f.skipped for f in self.folders)

    @property
    def failed(self) -> int:
        return sum(f.failed for f in self.folders)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.folders)


class Progress:
    """Receives progress events (same shape as :class:`archiver.progress.Progress`)."""

    def folder(self, name: str, messages: int, size: int) -> None:
        pass

    def advance(self, messages: int, size: int) -> None:
        pass


# -- pure helpers -------------------------------------------------------------------------
def as_of_timestamp(text: str, now: datetime | None = None) -> str:
    """ISO UTC timestamp (the catalog's run clock) for a user's ``--as-of``.

    A bare date means the end of that day; a naive time is local time.  Raises RestoreError.
    """
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, dtime(23, 59, 59, 999999)).astimezone()
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.astimezone()
    except ValueError:
        raise RestoreError(
            f"--as-of: expected a date (2026-11-20) or date-time (2026-11-20T14:30), got {text!r}"
        ) from None
    if moment > (now or utc_now()):
        raise RestoreError(f"--as-of {text} is in the future")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def target_parts(folder: str, delimiter: str | None, prefix: str | None) -> tuple[str, ...]:
    """The target folder as path components: prefix components (``/`` separated), then the source's
    as :func:`archiver.names.folder_parts` maps them (no empty, ``.`` or ``..`` component reaches
    the server).  Raises RestoreError for a prefix with a ``.`` or ``..`` component."""
    head = [p for p in (prefix or "").split("/") if p]
    for part in head:
        if part in (".", ".."):
            raise RestoreError(f"prefix {prefix!r}: {part!r} is not a folder name")
    return (*head, *folder_parts(folder, delimiter))


def distinct_targets(folders: Sequence[FolderPlan]) -> list[FolderPlan]:
    """The plans with no two source folders sharing a target: a folder whose name was mapped (see
    :mod:`archiver.names`) and lands on another's target gets ``~2``, ``~3``… on its last component;
    folders restored under their own names keep them."""
    taken: dict[tuple[str, ...], set[str]] = {}
    mapped = []
    for plan in folders:
        own = tuple(split_folder(plan.source, plan.source_delimiter))
        if folder_parts(plan.source, plan.source_delimiter) == own:
            taken.setdefault(plan.target_parts[:-1], set()).add(plan.target_parts[-1])
        else:
            mapped.append(plan)
    result = {id(plan): plan for plan in folders}
    for plan in mapped:
        parent, last = plan.target_parts[:-1], plan.target_parts[-1]
        unique = unique_name(taken.setdefault(parent, set()), last, fold=str)
        result[id(plan)] = replace(plan, target_parts=(*parent, unique))
    return [result[id(plan)] for plan in folders]


def target_mailbox(parts: Sequence[str], delimiter: str | None) -> str:
    """Join components with the target's delimiter; a delimiter inside a component becomes ``_``."""
    if not delimiter:
        return "_".join(parts)
    return delimiter.join(part.replace(delimiter, "_") for part in parts)


SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
_SYSTEM = {f.lower() for f in SYSTEM_FLAGS}
_ATOM_SPECIALS = set('(){ %*"\\]')


def is_keyword(flag: str) -> bool:
    """Whether ``flag`` can be sent as an IMAP keyword at all (an atom: printable ASCII, no specials)."""
    return bool(flag) and all(32 < ord(ch) < 127 and ch not in _ATOM_SPECIALS for ch in flag)


def in_namespace(name: str, prefix: str | None) -> str:
    """``name`` inside the target's personal namespace (RFC 2342), e.g. ``INBOX.`` on Courier or Cyrus.

    INBOX itself, and names already under the prefix, are left alone; an empty prefix changes nothing.
    """
    if not prefix or name.upper() == "INBOX" or name.startswith(prefix):
        return name
    if prefix.upper().startswith("INBOX") and name.upper().startswith(prefix.upper()):
        return name  # INBOX is case-insensitive: "inbox.Sent" is already inside "INBOX."
    return prefix + name


def appendable_flags(flags: Sequence[str], permanent: Sequence[str] | None) -> tuple[tuple[str, ...], set[str]]:
    """(flags to send, flags the target refuses).  ``\\Recent`` can never be set; ``\\*`` allows keywords.

    ``permanent`` None means the server sent no PERMANENTFLAGS: then every system flag and every
    keyword may be stored (RFC 3501).  A keyword that is not a valid atom (e.g. a label with ``]`` or
    non-ASCII from another system) or an unknown ``\\`` flag would make the whole APPEND fail: refused here.
    """
    allowed = None if permanent is None else {f.lower() for f in permanent}
    kept: list[str] = []
    refused: set[str] = set()
    for flag in flags:
        low = flag.lower()
        if low == "\\recent":
            continue
        if flag.startswith("\\"):
            ok = low in _SYSTEM if allowed is None else low in allowed
        else:
            ok = is_keyword(flag) and (allowed is None or low in allowed or "\\*" in allowed)
        if ok:
            kept.append(flag)
        else:
            refused.add(flag)
    return tuple(kept), refused


def batches(items: Sequence[Item], max_bytes: int, max_count: int) -> Iterator[list[Item]]:
    """Consecutive groups bounded by count and bytes (a message bigger than ``max_bytes`` goes alone)."""
    batch: list[Item] = []
    size = 0
    for item in items:
        if batch and (size + item.size > max_bytes or len(batch) >= max_count):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item.size
    if batch:
        yield batch


# -- selecting what a scope means -------------------------------------------------------------
def _item(row: PlacementRow) -> Item:
    return Item(
        row.id,
        row.blob_id,
        row.folder,
        row.delimiter,
        row.flags,
        row.internaldate,
        row.size,
        row.message_id,
        row.subject,
        row.date,
    )


def _resolve_run(catalog: Catalog, account_id: int, scope: Scope) -> int | None:
    if scope.run_id is not None:
        row = catalog.run(scope.run_id)
        if row is None or row["account_id"] != account_id:
            raise RestoreError(f"run {scope.run_id} is not a run of account {scope.account!r}")
        return scope.run_id
    if scope.as_of is None:
        return None
    run_id = catalog.run_at(account_id, as_of_timestamp(scope.as_of))
    if run_id is None:
        raise RestoreError(f"account {scope.account!r} had no backup run by {scope.as_of}: nothing to restore")
    return run_id


def _explicit_items(catalog: Catalog, scope: Scope, account_id: int | None) -> list[Item]:
    items: list[Item] = []
    for ref in scope.messages:
        ref = ref.strip().lower()
        if ref.isdigit():
            row = catalog.restore_placement(int(ref))
        elif is_blob_id(ref):
            row = catalog.restore_placement_of_blob(ref, account_id)
        else:
            raise RestoreError(f"{ref!r} is neither a blob id (64 hex digits) nor a placement id (a number)")
        if row is None:
            raise RestoreError(f"no archived message {ref}" + (f" in account {scope.account!r}" if account_id else ""))
        items.append(_item(row))
    return sorted(items, key=lambda i: (i.folder, i.internaldate or "", i.placement_id))


def select_items(catalog: Catalog, scope: Scope) -> tuple[int | None, int | None, Iterator[Item]]:
    """(account id, run id, items ordered by folder) for a scope; streamed from the catalog.

    Without ``folders`` and ``messages`` the whole account, minus folders gone from the server by
    then.  Named folders are taken even when gone: their last known content (or as of the run).
    """
    account_id = None
    if scope.account is not None:
        account_id = catalog.account_id(scope.account)
        if account_id is None:
            raise RestoreError(f"the archive has no account {scope.account!r}")
    elif not scope.messages:
        raise RestoreError("name the source account (--account) or the messages to take")
    if scope.messages:
        return account_id, None, iter(_explicit_items(catalog, scope, account_id))
    assert account_id is not None
    run_id = _resolve_run(catalog, account_id, scope)
    records = catalog.folders(account_id)
    if scope.folders:
        missing = [name for name in scope.folders if name not in records]
        if missing:
            known = ", ".join(sorted(records)[:10])
            raise RestoreError(f"account {scope.account!r} has no folder {missing[0]!r} (some it has: {known})")
        names = sorted(scope.folders)
    else:
        names = sorted(
            name
            for name, record in records.items()
            if record.gone_since_run is None or (run_id is not None and record.gone_since_run > run_id)
        )

    def generate() -> Iterator[Item]:
        for name in names:
            for row in catalog.placements_as_of(account_id, name, run_id):
                yield _item(row)

    return account_id, run_id, generate()


def plan_restore(catalog: Catalog, scope: Scope, prefix: str | None = None, in_place: bool = False) -> RestorePlan:
    """Resolve a scope into per-folder counts and target paths (reads the catalog, touches no server)."""
    account_id, run_id, items = select_items(catalog, scope)
    if in_place:
        prefix = ""
    elif prefix is None:
        when = catalog.run(run_id)["started_at"][:10] if run_id is not None else utc_now().date().isoformat()
        prefix = DEFAULT_PREFIX.format(date=when)
    folders = []
    for (folder, delimiter), group in itertools.groupby(items, key=lambda i: (i.folder, i.delimiter)):
        count = size = 0
        for item in group:
            count += 1
            size += item.size
        folders.append(FolderPlan(folder, delimiter, target_parts(folder, delimiter, prefix), count, size))
    return RestorePlan(scope, account_id, run_id, tuple(distinct_targets(folders)))


def plan_items(catalog: Catalog, plan: RestorePlan) -> Iterator[tuple[FolderPlan, list[Item]]]:
    """The plan's folders with their items, one folder in memory at a time."""
    by_name = {f.source: f for f in plan.folders}
    _, _, items = select_items(catalog, plan.scope)
    for folder, group in itertools.groupby(items, key=lambda i: i.folder):
        if folder in by_name:
            yield by_name[folder], list(group)


# -- running -----------------------------------------------------------------------------------
def execute_restore(
    archive: Archive,
    plan: RestorePlan,
    target: AccountConfig,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> RestoreReport:
    """Carry out a plan against ``target`` (an IMAP account); server problems land in the report."""
    from archiver.restore.imap_target import ImapTarget

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
