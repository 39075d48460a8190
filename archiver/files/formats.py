"""The file formats ``archiver export`` writes and ``archiver import`` reads, each with both directions.

Writing and reading a format side by side is what keeps a round trip exact: what the exporter
escapes, names or records is undone here by the same rules.

* mboxrd: a ``From `` line per message (:func:`from_line`, read back by :func:`from_line_date`),
  one more ``>`` on every body line matching ``^>*From `` (:class:`MboxrdEscaper`, undone by
  :func:`mboxrd_unescape_line`), a newline added to a message that lacks one (told apart on
  reading by the manifest's blob id: :func:`original_bytes`), a blank line between messages;
  ``Status``/``X-Status`` headers other mail programs write give flags (:func:`status_flags`).
* Maildir: flags as the letters D F P R S T after ``:2,`` (:data:`MAILDIR_FLAGS`), keywords as
  a-z letters listed in ``dovecot-keywords``; Maildir++ folder names (:func:`maildir_folder`).
* ``MANIFEST.tsv``: one line per exported message (path, ordinal in the file, blob id, folder,
  flags, INTERNALDATE with its offset), the exact record import takes flags and dates back from.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, TextIO

from archiver.mail.headers import header_fields
from archiver.names import decode_maildir_component

FORMATS = ("mbox", "maildir", "eml")

# -- mboxrd ----------------------------------------------------------------------------------------

_FROM = re.compile(rb">*From ")
_LINE_FROM = re.compile(rb"^(?=>*From )", re.MULTILINE)
_MAYBE_FROM = re.compile(rb">*(?:F(?:r(?:o(?:m)?)?)?)?\Z")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ASCTIME = re.compile(rb"([A-Z][a-z]{2}) +([A-Z][a-z]{2}) +(\d{1,2}) +(\d\d:\d\d:\d\d) +(\d{4})")
_STATUS_FIELDS = frozenset({b"status", b"x-status"})
_STATUS_LETTERS = {"R": "\\Seen", "A": "\\Answered", "F": "\\Flagged", "T": "\\Draft", "D": "\\Deleted"}


class MboxrdEscaper:
    """Streams a message into an mboxrd file: one more ``>`` on every line matching ``^>*From ``.

    Works on chunks of any size: a line start that might still become ``>>From `` is held back
    (only those few bytes), everything else is written at once.
    """

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self._write = write
        self._line_start = True
        self._pending = b""
        self._last = b"\n"

    def _out(self, data: bytes) -> None:
        if data:
            self._write(data)
            self._last = data[-1:]

    def feed(self, data: bytes) -> None:
        if self._pending:
            data, self._pending = self._pending + data, b""
        pos = 0
        if not self._line_start:  # finish the line that is open
            newline = data.find(b"\n")
            if newline < 0:
                self._out(data)
                return
            self._out(data[: newline + 1])
            pos = newline + 1
            self._line_start = True
        end = data.rfind(b"\n", pos) + 1 or pos  # whole lines: one regex pass (C speed), not a loop per line
        if end > pos:
            self._out(_LINE_FROM.sub(b">", data[pos:end]))
        tail = data[end:]  # a line begun but not ended in this chunk
        if not tail:
            return
        if _FROM.match(tail):
            self._out(b">")
        elif _MAYBE_FROM.match(tail):
            self._pending = tail
            return
        self._out(tail)
        self._line_start = False

    def close(self) -> None:
        """Flush, end the message with a newline if it lacks one, and add the separating blank line."""
        self._out(self._pending)
        self._pending = b""
        if self._last != b"\n":
            self._out(b"\n")
        self._write(b"\n")


def mboxrd_unescape_line(line: bytes) -> bytes:
    return line[1:] if line.startswith(b">") and _FROM.match(line, 1) else line


def from_line(internaldate: str | None) -> bytes:
    """The ``From `` line: asctime of the date in UTC, the year always four digits.

    An INTERNALDATE at the edge of the calendar (0001-01-01 +14:00, 9999-12-31 -12:00) has no UTC
    form in Python's range: its own wall-clock time stands in.  Only the From line is approximate;
    the manifest keeps the exact INTERNALDATE, which is what ``archiver import`` takes back.
    """
    moment = datetime(1970, 1, 1, tzinfo=UTC)
    if internaldate:
        parsed = datetime.fromisoformat(internaldate)
        try:
            moment = parsed.astimezone(UTC)
        except OverflowError:
            moment = parsed.replace(tzinfo=UTC)
    clock = f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    day, month = _DAYS[moment.weekday()], _MONTHS[moment.month - 1]
    return f"From MAILER-DAEMON {day} {month} {moment.day:2d} {clock} {moment.year:04d}\n".encode()


def from_line_date(line: bytes) -> str | None:
    """The date of a ``From `` line (ours or another program's) as ISO 8601 in UTC; None when it has none."""
    match = _ASCTIME.search(line)
    if not match:
        return None
    try:
        moment = datetime.strptime(b" ".join(match.groups()).decode(), "%a %b %d %H:%M:%S %Y")
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC).isoformat()


def read_mbox(path: Path, rel: str) -> Iterator[tuple[str, bytes, str | None, int]]:
    """(key, raw, From-line date, ordinal) of each message of an mboxrd file, one in memory at a time."""
    lines: list[bytes] = []
    date: str | None = None
    ordinal = 0
    started = False

    def finish() -> bytes:
        if lines and lines[-1] in (b"\n", b"\r\n"):
            lines.pop()  # the blank line that separates messages
        return b"".join(lines)

    with path.open("rb") as handle:
        for line in handle:
            if line.startswith(b"From "):
                if started:
                    yield f"{rel}#{ordinal}", finish(), date, ordinal
                started = True
                ordinal += 1
                lines = []
                date = from_line_date(line)
                continue
            if started:
                lines.append(mboxrd_unescape_line(line))
        if started:
            yield f"{rel}#{ordinal}", finish(), date, ordinal


def original_bytes(raw: bytes, blob_id: str) -> bytes:
    """The archived bytes of a message read back from an mbox export.

    mboxrd ends every message with a newline, so a message archived without a final newline (IMAP
    servers keep them as sent) reads back with one more.  The manifest's blob id is the sha256 of
    the original: it tells which of the two forms that was.
    """
    added = raw.endswith(b"\n") and hashlib.sha256(raw).hexdigest() != blob_id
    return raw[:-1] if added and hashlib.sha256(raw[:-1]).hexdigest() == blob_id else raw


def status_flags(raw: bytes) -> tuple[str, ...]:
    """Flags from mbox ``Status``/``X-Status`` headers (mutt, Thunderbird, Evolution write them)."""
    fields = header_fields(raw, _STATUS_FIELDS)
    status = fields.get(b"status", "") + fields.get(b"x-status", "")
    return tuple(sorted({_STATUS_LETTERS[c] for c in status if c in _STATUS_LETTERS}))


# -- Maildir -----------------------------------------------------------------------------------------

MAILDIR_FLAGS = {
    "\\Draft": "D",
    "\\Flagged": "F",
    "$Forwarded": "P",
    "\\Answered": "R",
    "\\Seen": "S",
    "\\Deleted": "T",
}
_LETTER_FLAGS = {letter: flag for flag, letter in MAILDIR_FLAGS.items()}
MAILDIR_KEYWORDS = "dovecot-keywords"


def maildir_info(flags: tuple[str, ...], keyword_letter: Callable[[str], str | None]) -> str:
    """The ``:2,<letters>`` suffix of a Maildir file name; ``keyword_letter`` gives a keyword's a-z letter."""
    letters = {MAILDIR_FLAGS[f] for f in flags if f in MAILDIR_FLAGS}
    letters |= {
        letter for f in flags if not f.startswith("\\") and f not in MAILDIR_FLAGS if (letter := keyword_letter(f))
    }
    return ":2," + "".join(sorted(letters))


def maildir_name_flags(name: str, keywords: dict[str, str]) -> tuple[str, tuple[str, ...]]:
    """(unique name, flags) of a Maildir file name; ``keywords`` maps a-z letters to keywords.

    ``!2,`` is the separator some programs use where ``:`` is not allowed in file names.
    """
    unique, _, info = name.replace("!2,", ":2,").partition(":2,")
    letters = [_LETTER_FLAGS.get(c) or keywords.get(c) for c in info]
    return unique, tuple(sorted(f for f in letters if f))


def write_maildir_keywords(directory: Path, letters: dict[str, str]) -> None:
    """Write ``dovecot-keywords`` for ``letters`` (keyword → a-z letter); nothing when there are none."""
    if letters:
        lines = "".join(f"{ord(letter) - ord('a')} {keyword}\n" for keyword, letter in letters.items())
        (directory / MAILDIR_KEYWORDS).write_text(lines, encoding="utf-8")


def read_maildir_keywords(directory: Path) -> dict[str, str]:
    """a-z letter → keyword, from the maildir's ``dovecot-keywords`` (empty without one)."""
    path = directory / MAILDIR_KEYWORDS
    if not path.is_file():
        return {}
    letters = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        number, _, name = line.partition(" ")
        if number.isdigit() and name and int(number) < 26:
            letters[chr(ord("a") + int(number))] = name
    return letters


def maildir_folder(rel: Path) -> str:
    """Folder name of a maildir at ``rel`` under the root: Maildir++ ``.a.b`` or nested ``a/b``."""
    if rel == Path("."):
        return "INBOX"
    maildir_plus = len(rel.parts) == 1 and rel.name.startswith(".")
    parts = rel.name[1:].split(".") if maildir_plus else list(rel.parts)
    return "/".join(decode_maildir_component(p) for p in parts)


# -- MANIFEST.tsv ------------------------------------------------------------------------------------

MANIFEST = "MANIFEST.tsv"
_MANIFEST_COLUMNS = ("path", "ordinal", "blob_id", "folder", "flags", "internaldate")


class ManifestEntry(NamedTuple):
    """One line of an export's MANIFEST.tsv: what the message was in the archive."""

    folder: str
    flags: tuple[str, ...]
    internaldate: str | None
    blob_id: str


def write_manifest_header(out: TextIO) -> None:
    out.write("\t".join(_MANIFEST_COLUMNS) + "\n")


def write_manifest_line(out: TextIO, rel: str, ordinal: int, entry: ManifestEntry) -> None:
    """One message: ``ordinal`` is its position in an mbox file (from 1), 0 for a file of its own."""
    fields = [rel, str(ordinal), entry.blob_id, entry.folder, " ".join(entry.flags), entry.internaldate or ""]
    out.write("\t".join(f.replace("\t", " ").replace("\n", " ") for f in fields) + "\n")


def read_manifest(root: Path) -> dict[str, ManifestEntry]:
    """key ("<path>#<n>" for mbox, "<path>" otherwise) → its manifest entry; empty without a manifest."""
    path = root / MANIFEST
    if not path.is_file():
        return {}
    entries = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) == len(_MANIFEST_COLUMNS):
            rel, ordinal, blob_id, folder, flags, when = parts
            key = f"{rel}#{ordinal}" if ordinal != "0" else rel
            entries[key] = ManifestEntry(folder, tuple(flags.split()), when or None, blob_id)
    return entries
