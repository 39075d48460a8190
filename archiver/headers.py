"""Lenient extraction of the few headers the catalog keeps for every message.

Real mail is broken in every way (bad charsets, NUL bytes, 200 KB headers,
missing blank line); none of that may stop a message from being archived, so
every step here falls back to something readable instead of raising.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import decode_header
from email.parser import BytesHeaderParser
from email.policy import compat32

_MAX_HEADER_BYTES = 512 * 1024
_MAX_FIELD_CHARS = 2000


@dataclass(frozen=True)
class HeaderSummary:
    """What the catalog records about a message, all optional."""

    message_id: str | None
    date: str | None  # ISO 8601 from the Date header, when it parses
    sender: str | None
    recipients: str | None
    subject: str | None


def header_block(raw: bytes) -> bytes:
    """The header section of a message (up to the first empty line), bounded in size."""
    head = raw[:_MAX_HEADER_BYTES]
    cut = len(head)
    for separator in (b"\r\n\r\n", b"\n\n"):
        position = head.find(separator)
        if position != -1:
            cut = min(cut, position + len(separator))
    return head[:cut]


def decode_words(value: str | None) -> str | None:
    """Decode RFC 2047 encoded words leniently; unknown charsets fall back to latin-1."""
    if value is None:
        return None
    try:
        parts = decode_header(value)
    except Exception:
        return _clean(value)
    pieces = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            pieces.append(chunk)
            continue
        for candidate in (charset, "utf-8", "latin-1"):
            if not candidate:
                continue
            try:
                pieces.append(chunk.decode(candidate))
                break
            except (LookupError, UnicodeDecodeError):
                continue
    return _clean("".join(pieces))


def _clean(text: str) -> str:
    text = " ".join(text.replace("\x00", "").split())
    return text[:_MAX_FIELD_CHARS]


def parse_date(value: str | None) -> datetime | None:
    """A Date header as an aware datetime (its own offset; UTC when it has none), None when unreadable."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _iso_date(value: str | None) -> str | None:
    parsed = parse_date(value)
    try:
        return None if parsed is None else parsed.isoformat()
    except (ValueError, OverflowError):
        return None


def summarize_headers(raw: bytes) -> HeaderSummary:
    """Parse Message-ID, Date, From, To and Subject from a raw message, never raising."""
    try:
        message = BytesHeaderParser(policy=compat32).parsebytes(header_block(raw))
    except Exception:
        return HeaderSummary(None, None, None, None, None)

    def field(name: str) -> str | None:
        try:
            value = message.get(name)
        except Exception:
            return None
        return None if value is None else str(value)

    message_id = field("Message-ID")
    if message_id is not None:
        message_id = _clean(message_id)[:998] or None
    return HeaderSummary(
        message_id=message_id,
        date=_iso_date(field("Date")),
        sender=decode_words(field("From")),
        recipients=decode_words(field("To")),
        subject=decode_words(field("Subject")),
    )


def utc_now() -> datetime:
    """Aware UTC now; one place so tests and the catalog agree on the clock."""
    return datetime.now(UTC)
