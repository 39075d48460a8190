"""Plain data that sources hand to the backup run; sources know nothing of storage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from archiver.sources.spool import SpooledBody


@dataclass(frozen=True)
class FolderInfo:
    """A selectable folder as LIST shows it, name decoded from modified UTF-7."""

    name: str
    delimiter: str | None
    flags: tuple[str, ...]
    special_use: str | None


@dataclass(frozen=True)
class FolderStatus:
    """The server's counters for a folder (STATUS or EXAMINE)."""

    uidvalidity: int
    uidnext: int | None
    messages: int | None
    highestmodseq: int | None


@dataclass(frozen=True)
class FetchedMessage:
    """One message exactly as the server gave it.

    ``raw`` is ``bytes``, or a :class:`SpooledBody` (a file) for a message over the spool
    threshold, which the store reads streaming; whoever drops such a message discards it.
    """

    uid: int | str
    raw: bytes | SpooledBody
    flags: tuple[str, ...]
    internaldate: datetime | None
    size: int
