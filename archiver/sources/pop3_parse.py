"""POP3 answers read apart from the connection (as imapclient parses IMAP): pure functions over bytes.

What a LIST, UIDL or multi-line response means, how a message's bytes are cut from the
response (the byte rule in :mod:`archiver.sources.pop3`), and the keys a maildrop's
messages are known by.  No socket here: every function is unit-tested and fuzzed alone.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from archiver.errors import ProtocolError

READ_CHUNK = 1 << 16  # longest piece read at once: a line longer than this is read in pieces
FINGERPRINT_PREFIX = "fp:"  # keys made without UIDL; a UIDL is printable ASCII and could not be told apart otherwise
_UIDL = re.compile(rb"[\x21-\x7e]{1,70}")
MAX_MESSAGE_NUMBER = 2**31 - 1


@dataclass(frozen=True)
class MaildropEntry:
    """One message of the maildrop as listed in this session."""

    number: int  # message number: valid for this session only
    key: str  # the UIDL, or a fingerprint when the server has no UIDL
    size: int  # octets as LIST says (the CRLF form of the message)


def parse_scan_listing(lines: Iterable[bytes]) -> dict[int, int]:
    """``LIST`` lines (``"1 1205"``) → message number → size; extra fields after the size are ignored."""
    sizes: dict[int, int] = {}
    for line in lines:
        fields = line.split()
        if (
            len(fields) < 2
            or not _is_number(fields[0], 1, MAX_MESSAGE_NUMBER)
            or not _is_number(fields[1], 0, 2**63 - 1)
        ):
            raise ProtocolError(f"unexpected LIST line {line[:80]!r}")
        sizes[int(fields[0])] = int(fields[1])
    return sizes


def parse_uidl_listing(lines: Iterable[bytes]) -> dict[int, str]:
    """``UIDL`` lines (``"1 000000016b041cac"``) → message number → unique id, kept verbatim."""
    uidls: dict[int, str] = {}
    for line in lines:
        fields = line.split()
        if len(fields) != 2 or not _is_number(fields[0], 1, MAX_MESSAGE_NUMBER) or not _UIDL.fullmatch(fields[1]):
            raise ProtocolError(f"unexpected UIDL line {line[:80]!r}")
        uidls[int(fields[0])] = fields[1].decode("ascii")
    return uidls


def _is_number(field: bytes, low: int, high: int) -> bool:
    """An ASCII decimal from ``low`` to ``high`` (``isdigit`` alone takes "²" and 10^100)."""
    return field.isascii() and field.isdigit() and len(field) <= 19 and low <= int(field) <= high


def unique_keys(keys: Sequence[str]) -> list[str]:
    """Make repeated keys unique by maildrop order ("k", "k#2", "k#3"…).

    Only needed for fingerprints (two identical messages) or a server breaking
    UIDL's uniqueness; a catalog placement needs one key per message.
    """
    seen: dict[str, int] = {}
    result = []
    for key in keys:
        count = seen.get(key, 0) + 1
        seen[key] = count
        result.append(key if count == 1 else f"{key}#{count}")
    return result


def fingerprint(headers: bytes, size: int) -> str:
    """The identity of a message on a server without UIDL: its header block (``TOP n 0``) and its LIST size."""
    digest = hashlib.sha256(b"%d\n" % size + headers).hexdigest()
    return f"{FINGERPRINT_PREFIX}{digest[:40]}"


def read_multiline(readline: Callable[[int], bytes], chunk: int = READ_CHUNK, limit: int | None = None) -> bytearray:
    """Read a multi-line response up to its ``.CRLF`` terminator, undoing dot-stuffing.

    Line endings are kept exactly as received.  ``readline(n)`` returns up to
    ``n`` bytes ending at the first LF (a buffered socket file's ``readline``);
    long lines arrive in pieces and only a piece that starts a line is checked
    for a leading dot.  A response that grows past ``limit`` bytes raises
    :class:`MessageTooLarge` (a message that never ends cannot fill the memory).
    """
    out = bytearray()
    at_line_start = True
    while True:
        piece = readline(chunk)
        if not piece:
            raise EOFError("the server closed the connection inside a message")
        if at_line_start and piece[:1] == b".":
            while not piece.endswith(b"\n") and len(piece) < 3:  # ".", ".\r": a piece too short to judge
                more = readline(chunk)
                if not more:
                    raise EOFError("the server closed the connection inside a message")
                piece += more
            if piece in (b".\r\n", b".\n"):
                return out
            piece = piece[1:]
        out += piece
        if limit is not None and len(out) > limit:
            raise MessageTooLarge(f"the message went on past max_message_bytes ({limit} bytes)")
        at_line_start = piece.endswith(b"\n")


def finish_message(data: bytearray, listed_size: int) -> bytes:
    """Drop the CRLF the server added to a message that lacked a final line break; NUL becomes 0x80.

    IMAP cannot carry NUL in a message (RFC 3501 §4.3) and Dovecot sends 0x80 in
    its place in ``BODY[]``; doing the same keeps one message one blob whichever
    protocol fetched it.
    """
    if len(data) == listed_size + 2 and data.endswith(b"\r\n"):
        del data[-2:]
    if b"\x00" in data:
        return bytes(data.replace(b"\x00", b"\x80"))
    return bytes(data)


def delivery_date(raw: bytes) -> datetime | None:
    """When the message reached the maildrop: the topmost ``Received:`` date, else ``Date:``.

    POP3 has no INTERNALDATE; this is what a server's own INTERNALDATE usually
    is, and it gives restores and the browse order a sensible date.
    """
    end = raw.find(b"\r\n\r\n")
    head = raw[: end if end >= 0 else min(len(raw), 65536)]
    unfolded = re.sub(rb"\r?\n[ \t]+", b" ", head).decode("latin-1")
    received = date = None
    for line in unfolded.splitlines():
        name, sep, value = line.partition(":")
        if not sep:
            continue
        lowered = name.strip().lower()
        if lowered == "received" and received is None and ";" in value:
            received = value.rpartition(";")[2]
        elif lowered == "date" and date is None:
            date = value
    for candidate in (received, date):
        if candidate:
            with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
                when = email.utils.parsedate_to_datetime(candidate.strip())
                return when if when.tzinfo else when.replace(tzinfo=UTC)
    return None


class MessageTooLarge(ProtocolError):
    """A message grew past max_message_bytes while it was read."""
