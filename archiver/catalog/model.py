"""The plain data the catalog takes and gives: frozen dataclasses, no sqlite3 objects.

Flags cross this boundary as tuples; in the catalog they are one canonical
string (:func:`encode_flags`), so equal flag sets compare equal as text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # an annotation only: the email package stays off the read paths (search, ls)
    from archiver.mail.headers import HeaderSummary


def encode_flags(flags: Iterable[str]) -> str:
    """Flags as one canonical string: sorted, space separated (IMAP flags hold no spaces)."""
    return " ".join(sorted(set(flags)))


def decode_flags(text: str) -> tuple[str, ...]:
    return tuple(text.split()) if text else ()


@dataclass(frozen=True)
class FolderRecord:
    """The catalog's view of one folder of an account."""

    id: int
    account_id: int
    name: str
    delimiter: str | None
    special_use: str | None
    uidvalidity: int | None
    uidnext: int | None
    highestmodseq: int | None
    server_messages: int | None
    gone_since_run: int | None


@dataclass(frozen=True)
class FolderLife:
    """When a folder was first seen and since when (which run, which moment) it is gone from the server."""

    name: str
    first_seen_run: int | None
    gone_since_run: int | None
    gone_since: str | None


@dataclass(frozen=True)
class PlacementRow:
    """A message in a folder, as the catalog knows it (read side)."""

    id: int
    folder: str
    delimiter: str | None
    uidvalidity: int
    uid: int | str
    blob_id: str
    flags: tuple[str, ...]
    internaldate: str | None
    size: int
    first_seen_run: int
    gone_since_run: int | None
    message_id: str | None
    subject: str | None
    sender: str | None
    date: str | None


@dataclass(frozen=True)
class NewPlacement:
    """A message just made durable in the blob store, to be recorded in a folder."""

    uid: int | str
    blob_id: str
    flags: tuple[str, ...]
    internaldate: str | None  # ISO 8601 with the server's offset
    size: int
    stored_size: int
    headers: HeaderSummary


@dataclass(frozen=True)
class Adoption:
    """A new UID recognised as a known blob: the placement to record, no bytes fetched."""

    uid: int
    blob_id: str
    flags: tuple[str, ...]
    internaldate: str | None  # ISO 8601 as the server gave it (offset kept, like fetched placements)
    size: int


class KnownCopyRow(NamedTuple):
    """A placement of an archived message, as the fingerprint match reads it (any folder, present or gone).

    A NamedTuple, not a dataclass: a UIDVALIDITY reset reads one per archived message, built straight from the row.
    """

    blob_id: str
    message_id: str | None
    size: int
    internaldate: str | None


@dataclass(frozen=True)
class RunTotals:
    """Counters of one run, added to the run row as batches commit."""

    messages_new: int = 0
    blobs_new: int = 0
    bytes_fetched: int = 0
    bytes_stored: int = 0
    flags_changed: int = 0
    messages_gone: int = 0


@dataclass(frozen=True)
class ScheduleState:
    """What the scheduler remembers about one account across restarts."""

    account: str
    schedule: str | None
    next_run_at: datetime | None
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_status: str | None
    last_run_id: int | None
    failing: bool


@dataclass(frozen=True)
class LatestRun:
    """An account's latest run, as the metrics show it."""

    account: str
    started_at: str
    ended_at: str | None
    status: str
    errors: int


@dataclass(frozen=True)
class AccountRunSums:
    """What all runs of an account did together (the metrics' counters)."""

    account: str
    messages_new: int
    bytes_fetched: int
    bytes_stored: int
    errors: int


@dataclass(frozen=True)
class PresentTotals:
    """Messages of an account present in the archive (not gone from the server) and their raw bytes."""

    account: str
    messages: int
    bytes: int


@dataclass(frozen=True)
class IndexBacklog:
    """What the catalog holds past the search index's bookmark (see ``IndexStateQueries.index_backlog``)."""

    messages: int  # messages not yet in the index
    changes: int  # indexed messages whose placements (folders, flags, gone) changed since
    oldest_added_at: str | None  # when the oldest message not yet indexed was archived (ISO 8601 UTC)
