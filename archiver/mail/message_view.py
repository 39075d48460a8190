"""A message's bytes turned into what a reader shows: headers, bodies, attachments.

No Flask here: the web UI (and anything else) calls :func:`parse_message` and
renders the result.  Parsing is lenient (``policy=default`` registers defects
instead of raising), because archived mail is whatever the server held,
hostile or broken.  HTML bodies are sanitised with nh3 by :func:`safe_html`;
the web layer adds the second wall (a sandboxed iframe with a strict CSP).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import nh3

#: Content types the browser may show inline for an attachment; everything else is octet-stream.
SAFE_INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"})
_CID_SRC = re.compile(r"""(src\s*=\s*["']?)cid:([^"'\s>]+)""", re.IGNORECASE)
_HEADERS_SHOWN = ("From", "To", "Cc", "Date", "Subject", "Reply-To", "Message-ID")


@dataclass(frozen=True)
class Part:
    """One leaf MIME part: its index in the walk is the id the web UI uses to download it."""

    index: int
    content_type: str
    filename: str | None
    size: int
    content_id: str | None
    is_attachment: bool


@dataclass(frozen=True)
class MessageView:
    headers: tuple[tuple[str, str], ...]
    text: str | None
    html: str | None  # raw (unsanitised) HTML body; pass it through safe_html before showing it
    parts: tuple[Part, ...]
    defects: int

    @property
    def attachments(self) -> tuple[Part, ...]:
        return tuple(p for p in self.parts if p.is_attachment)

    def cid_map(self) -> dict[str, int]:
        """Content-ID (without <>) → part index, for rewriting ``cid:`` image sources."""
        return {p.content_id: p.index for p in self.parts if p.content_id}


def _parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[return-value]


def _leaves(message: EmailMessage) -> list[EmailMessage]:
    return [part for part in message.walk() if not part.is_multipart()]  # type: ignore[misc]


def _payload(part: EmailMessage) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding: show what we can
        data = None
    return data if isinstance(data, bytes) else b""


def _text_of(part: EmailMessage) -> str:
    charset = part.get_content_charset() or "utf-8"
    data = _payload(part)
    try:
        return data.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return data.decode("utf-8", errors="replace")


def _header(message: EmailMessage, name: str) -> str | None:
    try:
        value = message.get(name)
    except Exception:  # a header so broken the policy cannot parse it
        return None
    return None if value is None else str(value)


def parse_message(raw: bytes) -> MessageView:
    """Headers, first text and HTML bodies, and every leaf part of ``raw``."""
    message = _parse(raw)
    headers = tuple((name, value) for name in _HEADERS_SHOWN if (value := _header(message, name)) is not None)
    text = html = None
    parts: list[Part] = []
    defects = len(message.defects)
    for index, part in enumerate(_leaves(message)):
        defects += len(part.defects)
        ctype = part.get_content_type()
        try:
            filename = part.get_filename()
        except Exception:
            filename = None
        disposition = part.get_content_disposition()
        cid = _header(part, "Content-ID")
        is_body = disposition != "attachment" and not filename and ctype in ("text/plain", "text/html")
        if is_body and ctype == "text/plain" and text is None:
            text = _text_of(part)
        elif is_body and ctype == "text/html" and html is None:
            html = _text_of(part)
        parts.append(
            Part(
                index=index,
                content_type=ctype,
                filename=filename,
                size=len(_payload(part)),
                content_id=cid.strip().strip("<>") if cid else None,
                is_attachment=not is_body,
            )
        )
    return MessageView(headers, text, html, tuple(parts), defects)


def part_bytes(raw: bytes, index: int) -> tuple[Part, bytes] | None:
    """The decoded payload of leaf part ``index`` (None when there is no such part)."""
    view = parse_message(raw)
    leaves = _leaves(_parse(raw))
    if not 0 <= index < len(leaves):
        return None
    return view.parts[index], _payload(leaves[index])


def safe_content_type(ctype: str) -> str:
    """What to send as Content-Type for a download: never anything a browser would run."""
    return ctype if ctype in SAFE_INLINE_TYPES else "application/octet-stream"


def safe_html(html: str, cid_url: dict[str, str], allow_remote_images: bool = False) -> str:
    """Sanitise an HTML body: no scripts, handlers, forms, frames, meta refresh, javascript: URLs.

    ``cid:`` image sources become the archive URLs in ``cid_url`` (unknown ones
    are dropped).  Remote images survive sanitising only when allowed, and even
    then the page's CSP decides whether the browser may load them.
    """
    schemes = {"http", "https", "mailto", "cid", "data"}
    cleaned = nh3.clean(
        html,
        tags=nh3.ALLOWED_TAGS - {"form", "input", "button", "select", "textarea", "iframe", "object", "embed"},
        attributes={**nh3.ALLOWED_ATTRIBUTES, "*": {"style", "align", "width", "height", "bgcolor", "title", "alt"}},
        url_schemes=schemes,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )

    def rewrite(match: re.Match[str]) -> str:
        url = cid_url.get(match.group(2))
        return f"{match.group(1)}{url}" if url else f"{match.group(1)}about:blank#"

    cleaned = _CID_SRC.sub(rewrite, cleaned)
    if not allow_remote_images:
        cleaned = re.sub(r"""(<img[^>]*\ssrc\s*=\s*["']?)https?:""", r"\1about:blank#", cleaned, flags=re.IGNORECASE)
    return cleaned
