"""The searchable text of a raw message: headers, body, attachment names and text.

Pure and Whoosh-free, so the index, the web UI's preview and the tests share it.

Real mail is broken in every way, so nothing here raises for a bad message:
every charset Python knows is tried under its common aliases, undecodable
bytes are replaced, a part that cannot be parsed is skipped and *why* lands in
:attr:`MessageText.problems`, which the indexer records in the catalog.

Work is capped, not timed, wherever possible (a thread cannot be killed): at
most ``max_parts`` MIME parts, ``max_body_chars`` of body, attachments larger
than ``max_attachment_bytes`` are named but not read, at most
``max_pdf_pages`` pages of a PDF, each PDF stream inflated to at most
``max_pdf_stream_bytes``, and a header section read up to
:data:`MAX_HEAD_BYTES` with lines of at most :data:`MAX_HEADER_LINE` bytes
(the email package holds many times a header's size while parsing it).  On the main thread a PDF additionally gets
a wall-clock limit through ``SIGALRM`` (pypdf is pure Python, so the alarm
interrupts it between bytecodes).

Speed: a message of 64 KB or more is split on its MIME boundaries with
``bytes.find`` and only the parts that can give text are handed to the email
package (see :func:`walk_parts`); the email package reads bodies line by line
and big binary attachments made parsing the largest cost of indexing.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import html
import io
import logging
import re
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from itertools import pairwise

from archiver.mail.headers import MAX_HEADER_BYTES, decode_words, parse_date

log = logging.getLogger("archiver.textextract")
logging.getLogger("pypdf").setLevel(logging.ERROR)  # pypdf warns about every odd PDF


@dataclass(frozen=True)
class ExtractLimits:
    """Per-message work caps (bounded memory and time on hostile input)."""

    max_parts: int = 200
    max_body_chars: int = 200_000
    max_attachment_bytes: int = 8 * 1024 * 1024
    max_attachment_chars: int = 32_000  # per message: enough to find a document, bounded indexing cost
    max_pdf_pages: int = 30
    max_pdf_stream_bytes: int = 8 * 1024 * 1024  # inflated size of one PDF stream (a 2 MB PDF can inflate to 2 GB)
    pdf_seconds: float = 5.0
    attachments: bool = True  # False: skip attachment text (snippets need only the body)


@dataclass
class MessageText:
    """Everything the index needs from one message, decoded to ``str``."""

    sender: str = ""
    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    body: str = ""
    attachment_names: list[str] = field(default_factory=list)
    attachment_text: str = ""
    date: datetime | None = None
    message_id: str | None = None
    list_id: str | None = None
    has_attachment: bool = False
    language: str = "en"
    problems: list[str] = field(default_factory=list)


# Mislabelled or aliased charsets seen in real mail → the codec that reads them best.
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cn-gb": "gb18030",
    "big5": "big5hkscs",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "sjis": "cp932",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "unicode-1-1-utf-7": "utf-7",
    "x-unknown": "",
    "unknown-8bit": "",
    "unknown": "",
    "x-user-defined": "",
    "default": "",
}


def _text_codec(name: str) -> bool:
    """Whether ``name`` is a codec from bytes to text: ``base64``, ``zlib``, ``rot13``… are codecs too."""
    try:
        return codecs.lookup(name)._is_text_encoding  # type: ignore[attr-defined]
    except (LookupError, ValueError):  # ValueError: a name with a NUL byte
        return False


def decode_text(data: bytes, charset: str | None, problems: list[str] | None = None) -> str:
    """Bytes to text, never raising: declared charset, then UTF-8, then cp1252 with replacement."""
    name = (charset or "").strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    if name and not _text_codec(name):
        if problems is not None:
            problems.append(f"unknown charset {name[:40]!r}, read as UTF-8/cp1252")
        name = ""
    if name:
        try:
            return data.decode(name)
        except (UnicodeDecodeError, ValueError, LookupError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if name:
        if problems is not None:
            problems.append(f"bytes invalid in charset {name!r}, undecodable ones replaced")
        try:
            return data.decode(name, errors="replace")
        except (LookupError, ValueError):
            pass
    return data.decode("cp1252", errors="replace")


_HTML_DROP = re.compile(r"(?is)<(script|style|head|title)\b.*?</\1\s*>|<!--.*?-->")
_HTML_BREAK = re.compile(r"(?i)<\s*(?:br|/p|p|/div|div|/tr|tr|li|/h[1-6]|h[1-6]|/td|td|hr)\b[^>]*>")
_HTML_TAG = re.compile(r"(?s)<[^>]*>")
_SPACES = re.compile(r"[ \t\r\f\v\xa0]+")
_LINES = re.compile(r"\n\s*\n+")


def html_to_text(markup: str) -> str:
    """Visible text of an HTML body (regex based: fast, and fine for search and snippets)."""
    text = _HTML_DROP.sub("", markup)
    text = _HTML_BREAK.sub("\n", text)
    text = _HTML_TAG.sub("", text)  # inline tags (<b>, <span>) do not split words
    text = html.unescape(text)
    text = _SPACES.sub(" ", text)
    return _LINES.sub("\n\n", text).strip()


class _PdfTimeout(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _PdfTimeout


#: pypdf's limits on what one stream may inflate to (and on the work of decoding one), by their names in
#: ``pypdf.Configuration`` (pypdf >= 6.11) and as module constants of ``pypdf.filters`` before that.
_PDF_OUTPUT_LIMITS = {
    "zlib_maximum_output_length": "ZLIB_MAX_OUTPUT_LENGTH",
    "lzw_maximum_output_length": "LZW_MAX_OUTPUT_LENGTH",
    "run_length_maximum_output_length": "RUN_LENGTH_MAX_OUTPUT_LENGTH",
    "jbig2_maximum_output_length": "JBIG2_MAX_OUTPUT_LENGTH",
    "brotli_maximum_output_length": "",
    "array_based_stream_maximum_output_length": "MAX_ARRAY_BASED_STREAM_OUTPUT_LENGTH",
    "maximum_declared_stream_length": "MAX_DECLARED_STREAM_LENGTH",
    "image_maximum_buffer_size": "FLATE_MAX_BUFFER_SIZE",
    "stream_decoding_work_maximum_length": "",
}


@contextlib.contextmanager
def _pdf_stream_cap(cap: int) -> Iterator[None]:
    """Inflate no PDF stream beyond ``cap`` bytes meanwhile (pypdf's own default is 75 MB per stream)."""
    import pypdf
    import pypdf.filters

    apply = getattr(pypdf, "apply_configuration", None)
    if apply is not None:
        known = {f.name for f in dataclasses.fields(pypdf.get_configuration())}
        with apply(**{name: cap for name in _PDF_OUTPUT_LIMITS if name in known}):
            yield
        return
    legacy = [name for name in _PDF_OUTPUT_LIMITS.values() if hasattr(pypdf.filters, name)]
    saved = {name: getattr(pypdf.filters, name) for name in legacy}
    try:
        for name in legacy:
            setattr(pypdf.filters, name, cap)
        yield
    finally:
        for name, value in saved.items():
            setattr(pypdf.filters, name, value)


def _page_contents_fit(page: object) -> bool:
    """Inflate a page's content streams (cached by pypdf for the text extraction that follows).

    False when one is larger than the cap: pypdf's text extraction would silently give nothing for it.
    """
    try:
        page.get_contents()  # type: ignore[attr-defined]
    except Exception as exc:  # others: left to the text extraction, which reads what it can
        return type(exc).__name__ != "LimitReachedError"  # by name: pypdf has it since 5.x only
    return True


def pdf_text(data: bytes, limits: ExtractLimits, problems: list[str]) -> str:
    """Text of a PDF, at most ``max_pdf_pages`` pages and ``max_attachment_chars`` characters."""
    try:
        from pypdf import PdfReader
    except ImportError:  # pragma: no cover - pypdf is a dependency
        problems.append("pypdf not installed: PDF text not indexed")
        return ""
    timed = threading.current_thread() is threading.main_thread() and limits.pdf_seconds > 0
    previous = None
    if timed:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, limits.pdf_seconds)
    pieces: list[str] = []
    try:
        with _pdf_stream_cap(limits.max_pdf_stream_bytes):
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                problems.append("encrypted PDF: text not indexed")
                return ""
            pieces = _pdf_pages(reader, limits, problems)
    except _PdfTimeout:
        problems.append(f"PDF text extraction stopped after {limits.pdf_seconds:g} s")
    except Exception as exc:  # pypdf raises anything on broken files
        problems.append(f"unreadable PDF: {type(exc).__name__}: {str(exc)[:100]}")
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    return "\n".join(pieces)[: limits.max_attachment_chars]


def _pdf_pages(reader: object, limits: ExtractLimits, problems: list[str]) -> list[str]:
    pieces: list[str] = []
    length = 0
    for number, page in enumerate(reader.pages):  # type: ignore[attr-defined]
        if number >= limits.max_pdf_pages:
            problems.append(f"PDF longer than {limits.max_pdf_pages} pages: the rest not indexed")
            break
        if not _page_contents_fit(page):
            cap = limits.max_pdf_stream_bytes >> 20
            problems.append(f"PDF stream inflating beyond {cap} MB (a PDF bomb?): the rest of its text not indexed")
            break
        text = page.extract_text() or ""
        pieces.append(text)
        length += len(text)
        if length >= limits.max_attachment_chars:
            break
    return pieces


_FR_WORDS = frozenset(
    re.findall(
        r"\S+",
        "le la les des une est et en du dans pour que qui pas sur au avec ce cette vous nous sont être mais ou "
        "aux par plus je il elle ne se son sa ses leur très été bonjour merci",
    )
)
_EN_WORDS = frozenset(
    re.findall(
        r"\S+",
        "the and of to is in that it for you with on this are be was have not at from but or by we an they will "
        "as your all can has would there their hello thanks",
    )
)
_WORD = re.compile(r"[^\W\d_]+")


def detect_language(text: str) -> str:
    """'fr' or 'en' from function-word counts in the first few KB (cheap, good enough to stem)."""
    french = english = 0
    for match in _WORD.finditer(text[:4000].lower()):
        word = match.group()
        if word in _FR_WORDS:
            french += 1
        elif word in _EN_WORDS:
            english += 1
    return "fr" if french > english and french >= 2 else "en"


def _header(message: Message, name: str) -> str:
    try:
        values = message.get_all(name) or []
    except Exception:
        return ""
    return " ".join(decode_words(str(v)) or "" for v in values)


def _date(message: Message) -> datetime | None:
    try:
        value = message.get("Date")
    except (TypeError, ValueError, IndexError):
        return None
    parsed = parse_date(str(value)) if value else None
    try:
        return None if parsed is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        return None
    if not name:
        return None
    return decode_words(str(name)) if "=?" in name else " ".join(str(name).split())


def _payload(part: Message, problems: list[str]) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception as exc:
        problems.append(f"undecodable {part.get_content_type()} part: {type(exc).__name__}")
        return b""
    if isinstance(data, str):
        return data.encode("utf-8", errors="replace")
    return data or b""


def _part_text(part: Message, problems: list[str]) -> str:
    return decode_text(_payload(part, problems), part.get_content_charset(None), problems)


def _attachment_text(part: Message, ctype: str, limits: ExtractLimits, problems: list[str]) -> str:
    if ctype == "application/pdf":
        return pdf_text(_payload(part, problems), limits, problems)
    if ctype.startswith("text/"):
        text = _part_text(part, problems)
        if ctype == "text/html":
            text = html_to_text(text[: limits.max_attachment_chars * 4])
        return text[: limits.max_attachment_chars]
    return ""


def _raw_size(part: Message) -> int:
    payload = part.get_payload()
    return len(payload) if isinstance(payload, str | bytes) else 0


_BLANK_LINE = re.compile(rb"\n\r?\n")
_READ_TYPES = ("text/", "application/pdf", "message/")  # parts whose body the extractor may read


#: What is read of a header section, and of one line of it: the rest is not indexed (see the module doc).
MAX_HEAD_BYTES = MAX_HEADER_BYTES
MAX_HEADER_LINE = 64 * 1024


def capped_head(data: bytes, start: int = 0, stop: int | None = None) -> tuple[bytes, int, bool]:
    """The header section of ``data[start:stop]``: (its bytes, where the body starts, whether it was cut).

    A section over :data:`MAX_HEAD_BYTES` keeps its first lines up to that size, each cut to
    :data:`MAX_HEADER_LINE` bytes, and ends with a blank line.  Offsets instead of slices, and
    the search for the section's end runs in C over the message in place: neither a 200 MB
    header line nor a big part is copied to find it.
    """
    stop = len(data) if stop is None else stop
    if data.startswith(b"\n", start, stop) or data.startswith(b"\r\n", start, stop):  # no header at all
        body_at = data.find(b"\n", start, stop) + 1
    else:
        match = _BLANK_LINE.search(data, start, stop)
        body_at = stop if match is None else match.end()
    if body_at - start <= MAX_HEAD_BYTES:
        return data[start:body_at], body_at, False
    kept: list[bytes] = []
    size, at = 0, start
    while size < MAX_HEAD_BYTES and at < body_at:
        end = data.find(b"\n", at, body_at)
        end = body_at if end < 0 else end + 1
        line = data[at : min(end, at + MAX_HEADER_LINE)]
        if not line.strip():  # the blank line that ends the section
            break
        kept.append(line if line.endswith(b"\n") else line + b"\r\n")
        size += len(kept[-1])
        at = end
    kept.append(b"\r\n")
    return b"".join(kept), body_at, True


def _capped_message(raw: bytes, problems: list[str] | None) -> bytes:
    """``raw`` with its header section cut by :func:`capped_head` (``raw`` itself when it fits)."""
    head, body_at, cut = capped_head(raw)
    if not cut:
        return raw
    if problems is not None:
        problems.append(
            f"header section over {MAX_HEAD_BYTES >> 10} KB: only its first {MAX_HEAD_BYTES >> 10} KB indexed"
        )
    return head + raw[body_at:]


def _part_spans(
    data: bytes, start: int, stop: int, boundary: str, truncated: bool = False
) -> list[tuple[int, int]] | None:
    """(start, stop) of the parts of the multipart body ``data[start:stop]``, split on ``--boundary`` lines.

    None without a closing delimiter, unless the message is ``truncated`` (its start only was
    read): then its last part ends where the bytes do.  Offsets, not copies: a big attachment
    is not copied to be skipped.
    """
    mark = b"--" + boundary.encode("ascii", "surrogateescape")
    lines: list[tuple[int, int, bool]] = []  # (delimiter line start, next line start, closing)
    found = data.find(b"\n" + mark, start, stop)
    at = start if data.startswith(mark, start, stop) else -1 if found < 0 else found + 1
    while at >= 0:
        end = data.find(b"\n", at, stop)
        end = stop if end < 0 else end + 1
        rest = data[at + len(mark) : end].rstrip(b"\r\n \t")
        if rest in (b"", b"--"):
            lines.append((at, end, rest == b"--"))
            if rest == b"--":
                break
        found = data.find(b"\n" + mark, end - 1, stop)
        at = -1 if found < 0 else found + 1
    if lines and not lines[-1][2] and truncated:
        lines.append((stop, stop, True))
    if not lines or not lines[-1][2]:
        return None
    spans = []
    for (_, first, _), (following, _, _) in pairwise(lines):
        # The line break before a delimiter is the delimiter's.
        last = following - 2 if data.startswith(b"\r\n", following - 2, following) else following
        last = following - 1 if last == following and data.startswith(b"\n", following - 1, following) else last
        if last > first:  # the email package makes no part of two adjacent delimiters either
            spans.append((first, last))
    return spans


#: A message is split by :func:`walk_parts` only when this many encoded bytes of unread bodies are saved.
SPLIT_FROM = 64 * 1024


#: What the email package may parse of one message or part in a big message: its parser holds several times
#: what it reads, so beyond this a message is read by the splitter or not at all.
PARSE_BYTES = 4 * 1024 * 1024
#: The encoded text parts of one big message handed over to be read, together: a 30 MB 8-bit body became a
#: 120 MB ``str`` (the email package keeps each 8-bit byte as a surrogate, 4 bytes); 4 MB still hold far more
#: than the 200,000 characters of body indexed.
TEXT_BYTES = 4 * 1024 * 1024


@dataclass
class _Split:
    """What splitting one message has used up so far (see :data:`TEXT_BYTES`)."""

    truncated: bool
    text_left: int = TEXT_BYTES
    text_cut: bool = False


def walk_parts(raw: bytes, problems: list[str] | None = None, truncated: bool = False) -> list[tuple[Message, int]]:
    """(part, encoded body size) for every MIME part, in ``Message.walk()`` order.

    The email package reads a body line by line, and a 5 MB base64
    attachment is 70,000 lines: parsing was the largest cost of indexing.  So
    a message whose parts the extractor never reads (images, archives,
    anything not text, PDF or a message) hold at least :data:`SPLIT_FROM`
    bytes is split on its boundaries here (bytes.find, in C), the parts it
    never reads keeping only their headers and the others their body as
    the email package would give it.  Smaller messages, and anything the splitter does not handle (a multipart
    without a usable boundary, digests, deep nesting), are parsed whole, so
    the odd corners of MIME keep the email package's reading.

    Every header section the splitter meets, and the message's own in any case, is read through
    :func:`capped_head`: the email package would hold many times its size.  ``truncated``: ``raw``
    is the start of a bigger message (see :func:`extract`).
    """
    raw = _capped_message(raw, problems)
    if len(raw) < SPLIT_FROM:
        return list(_walk_parsed(raw))
    split = _Split(truncated)
    try:
        found = list(_split_parts(raw, 0, len(raw), 0, split))
    except _NotSplittable:
        if len(raw) > PARSE_BYTES and problems is not None:
            problems.append(
                f"message not splittable on its MIME boundaries: only its first {PARSE_BYTES >> 20} MB read"
            )
        return list(_walk_parsed(raw[:PARSE_BYTES]))
    if split.text_cut and problems is not None:
        problems.append(f"text parts over {TEXT_BYTES >> 20} MB: the rest not indexed")
    parts: list[tuple[Message, int]] = []
    for headers, size, read in found:
        parts.extend(_walk_parsed(read) if read else [(headers, size)])
    return parts


class _NotSplittable(Exception):
    pass


def _split_parts(
    data: bytes, start: int, stop: int, depth: int, split: _Split
) -> Iterator[tuple[Message, int, bytes | None]]:
    """(headers, body size, bytes to parse) of ``data[start:stop]`` and its parts, by boundary splitting.

    The bytes are the whole part for what needs the email package (``message/`` parts other than
    a message, up to :data:`PARSE_BYTES`), b"" for containers and leaves complete as they are, None
    for the parts whose body is skipped.  A ``message/rfc822`` part is a container of the message
    in it, as the email package makes it, and that message is split in turn.
    """
    head, body_at, _ = capped_head(data, start, stop)
    headers = BytesHeaderParser(policy=compat32).parsebytes(head)
    ctype = headers.get_content_type()
    if depth > 10:
        raise _NotSplittable
    if ctype.startswith("multipart/"):
        boundary = headers.get_boundary()
        if not boundary or ctype == "multipart/digest":
            raise _NotSplittable
        spans = _part_spans(data, body_at, stop, boundary, split.truncated)
        if spans is None:
            raise _NotSplittable
        yield headers, stop - body_at, b""
        for first, last in spans:
            yield from _split_parts(data, first, last, depth + 1, split)
    elif ctype == "message/rfc822":
        headers.set_payload([])  # a container: extract() skips it as it does the email package's
        yield headers, stop - body_at, b""
        yield from _split_parts(data, body_at, stop, depth + 1, split)
    elif ctype.startswith("message/"):  # delivery reports and the like: small, and their own syntax
        yield headers, stop - body_at, head + data[body_at:stop] if stop - start <= PARSE_BYTES else None
    elif ctype.startswith(_READ_TYPES):
        # What the email package would make of a leaf part: its headers and its body as text.
        end = stop
        if ctype.startswith("text/"):
            end = min(stop, body_at + split.text_left)
            split.text_left -= end - body_at
            split.text_cut = split.text_cut or end < stop
        headers.set_payload(data[body_at:end].decode("ascii", "surrogateescape"))
        yield headers, stop - body_at, b""
    else:
        yield headers, stop - body_at, None


def _walk_parsed(raw: bytes) -> Iterator[tuple[Message, int]]:
    for part in BytesParser(policy=compat32).parsebytes(raw).walk():
        yield part, _raw_size(part)


def extract(raw: bytes, limits: ExtractLimits | None = None, truncated: bool = False) -> MessageText:
    """Decode one raw message into :class:`MessageText`; never raises.

    ``truncated``: ``raw`` is only the start of the message (a huge one, read so far for the index):
    its open multiparts end where the bytes do instead of making it unsplittable.
    """
    limits = limits or ExtractLimits()
    result = MessageText()
    problems = result.problems
    try:
        parts = walk_parts(raw, problems, truncated)
    except Exception as exc:  # pragma: no cover - both parsers read anything
        problems.append(f"unparseable message: {type(exc).__name__}")
        result.body = decode_text(raw[: limits.max_body_chars], None)
        return result
    message = parts[0][0]
    result.sender = _header(message, "From")
    result.to = _header(message, "To")
    result.cc = _header(message, "Cc")
    result.bcc = _header(message, "Bcc")
    result.subject = _header(message, "Subject")
    result.date = _date(message)
    message_id = _header(message, "Message-ID").strip()
    result.message_id = message_id or None
    list_id = _header(message, "List-Id")
    match = re.search(r"<([^<>]+)>", list_id)
    result.list_id = (match.group(1) if match else list_id).strip().lower() or None

    plain: list[str] = []
    markup: list[str] = []
    attached: list[str] = []
    attached_chars = 0
    for count, (part, size) in enumerate(parts):
        if count >= limits.max_parts:
            problems.append(f"more than {limits.max_parts} MIME parts: the rest not indexed")
            break
        if part.is_multipart() or part.get_content_maintype() == "multipart":
            continue
        try:
            ctype = part.get_content_type()
            disposition = part.get_content_disposition()
        except Exception:
            ctype, disposition = "application/octet-stream", "attachment"
        name = _filename(part)
        is_attachment = disposition == "attachment" or (name is not None and ctype not in ("text/plain", "text/html"))
        if is_attachment or not ctype.startswith("text/"):
            if name:
                result.attachment_names.append(name)
            if is_attachment or name:
                result.has_attachment = True
            if not limits.attachments or attached_chars >= limits.max_attachment_chars:
                continue
            if size > limits.max_attachment_bytes * 4 // 3 + 1024:
                problems.append(f"attachment {name or ctype!r} too large to read: only its name indexed")
                continue
            text = _attachment_text(part, ctype, limits, problems)
            attached.append(text)
            attached_chars += len(text)
        elif ctype == "text/plain":
            plain.append(_part_text(part, problems))
        elif ctype == "text/html":
            markup.append(_part_text(part, problems))
        elif ctype.startswith("text/") and limits.attachments:
            attached.append(_part_text(part, problems)[: limits.max_attachment_chars])
    body = "\n".join(plain) if plain else html_to_text("\n".join(markup)[: limits.max_body_chars * 4])
    result.body = body[: limits.max_body_chars]
    result.attachment_text = "\n".join(t for t in attached if t)[: limits.max_attachment_chars]
    result.language = detect_language(result.subject + "\n" + result.body)
    if len(problems) > 20:
        del problems[20:]
    return result
