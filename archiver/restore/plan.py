"""Restore archived mail into an IMAP account: byte exact, original flags and INTERNALDATE, idempotent.

Library API (what ``archiver restore`` and the web UI call; plain data in, a report out)::

    scope = Scope(account="work", folders=("Projects/2023",), as_of="2026-11-20")    # archiver.scope
    plan = plan_restore(archive.catalog, scope, prefix=None, in_place=False)   -> RestorePlan
        RestorePlan.folders: FolderPlan(source, target_parts, messages, bytes); .messages, .bytes
    report = execute_restore(archive, plan, target_account, dry_run=False, progress=None)  -> RestoreReport
        RestoreReport.folders: FolderReport(source, target, planned, appended, skipped, failed,
                                            bytes, created, failures, refused_flags); .ok, .problems
    restore(archive, scope, target_account, prefix=None, in_place=False, dry_run=False) -> RestoreReport

``execute_restore`` and ``restore`` live in :mod:`archiver.restore.execute`.  A
:class:`~archiver.scope.Scope` (shared with export) names what to take: one or more messages (blob
ids or placement ids), folders, or a whole account, now or as of a date or run (see
:func:`archiver.scope.select_items`).

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from archiver.catalog import Catalog
from archiver.errors import RestoreError
from archiver.names import folder_parts, split_folder, unique_name
from archiver.scope import Item, Scope, select_items
from archiver.times import utc_now

DEFAULT_PREFIX = "Restored/{date}"


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


# -- pure helpers -------------------------------------------------------------------------
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


def default_prefix(catalog: Catalog, run_id: int | None) -> str:
    """``Restored/<date>``: the day of the run restored from (as of a date or run), else today (UTC)."""
    when = catalog.run(run_id)["started_at"][:10] if run_id is not None else utc_now().date().isoformat()
    return DEFAULT_PREFIX.format(date=when)


def plan_restore(catalog: Catalog, scope: Scope, prefix: str | None = None, in_place: bool = False) -> RestorePlan:
    """Resolve a scope into per-folder counts and target paths (reads the catalog, touches no server)."""
    account_id, run_id, items = select_items(catalog, scope)
    if in_place:
        prefix = ""
    elif prefix is None:
        prefix = default_prefix(catalog, run_id)
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
