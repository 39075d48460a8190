"""Recognising a message the archive already holds without downloading it.

A folder's new UIDs are not always new mail: after a UIDVALIDITY reset every
message comes back under a new UID, a renamed folder reappears under its new
name, a label folder holds copies of messages archived from another folder.
Before fetching bodies we fetch, for the new UIDs only, a cheap *fingerprint* —
Message-ID (``BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]``), RFC822.SIZE and
INTERNALDATE — and look it up among the account's placements (present or gone).

The rule is deliberately strict, so a match never points at the wrong bytes:

* all three parts must be known (no Message-ID: no match, the body is fetched);
* exactly one blob may carry that fingerprint; two distinct blobs sharing it
  are "doubt", and doubt is settled by downloading and hashing (the blob store
  deduplicates, so a false doubt costs bandwidth, never storage).

Everything here is pure; the catalog query and the IMAP fetch are at the edges
(:mod:`archiver.backup.remap`, :meth:`archiver.sources.imap.ImapSource.stubs`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from archiver.mail.headers import summarize_headers


@dataclass(frozen=True)
class Fingerprint:
    """What identifies a message cheaply; ``internaldate`` is the UTC instant (seconds), not the server's text."""

    message_id: str | None
    size: int
    internaldate: str | None

    @property
    def usable(self) -> bool:
        return self.message_id is not None and self.internaldate is not None and self.size > 0


@dataclass(frozen=True)
class KnownCopy:
    """A message the catalog holds for this account: its blob and its fingerprint."""

    blob_id: str
    fingerprint: Fingerprint


def instant(value: datetime | str | None) -> str | None:
    """INTERNALDATE as a UTC instant to the second; naive values are taken as UTC.

    Dovecot keeps the instant but not the offset an APPEND gave, so offsets never take part in the comparison.
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


def message_id_of(header_fields: bytes | None) -> str | None:
    """The Message-ID from a ``HEADER.FIELDS (MESSAGE-ID)`` response, normalised as the catalog stores it."""
    if not header_fields:
        return None
    return summarize_headers(header_fields).message_id


def fingerprint(header_fields: bytes | None, size: int, internaldate: datetime | str | None) -> Fingerprint:
    return Fingerprint(message_id_of(header_fields), int(size), instant(internaldate))


def match_known(new: dict[int, Fingerprint], known: Iterable[KnownCopy]) -> dict[int, str]:
    """uid → blob id for the new UIDs whose fingerprint names exactly one known blob.

    UIDs missing from the result must be downloaded: unknown, unusable fingerprint, or ambiguous.
    """
    blobs_by_print: dict[Fingerprint, set[str]] = {}
    for copy in known:
        if copy.fingerprint.usable:
            blobs_by_print.setdefault(copy.fingerprint, set()).add(copy.blob_id)
    matches: dict[int, str] = {}
    for uid, print_ in new.items():
        if not print_.usable:
            continue
        blobs = blobs_by_print.get(print_)
        if blobs is not None and len(blobs) == 1:
            matches[uid] = next(iter(blobs))
    return matches
