"""The Whoosh schema and how one blob becomes one document.

One document per unique message (blob).  The fields that come from the
message's bytes (addresses, subject, text, attachments, dates) are computed by
:func:`archiver.textextract.extract`; the ones that come from where the
message lives (accounts, folders, flags) are computed from the catalog's
placements by :func:`placement_fields` and rewritten whenever a placement
changes.

A single extra document (``kind = "state"``) records which catalog state the
index reflects; it is rewritten in the same Whoosh commit as the documents,
so the index and its bookmark can never disagree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from whoosh.fields import ID, KEYWORD, NUMERIC, STORED, TEXT, Schema

from archiver.index.analysis import MailTokenizer
from archiver.index.fastwrite import MailPositions
from archiver.textextract import ExtractLimits, MessageText, extract

STATE_ID = "state"
LANGUAGES = ("en", "fr")
MAX_SIZE = 2**32 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_minutes(when: datetime) -> int:
    """The ``date`` field's value: whole minutes since 1970 UTC (naive datetimes are taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(MAX_SIZE, max(0, int((when - _EPOCH).total_seconds() // 60)))  # the field holds 32 bits


def _phrase_text(analyzer: MailTokenizer) -> TEXT:
    """A text field with positions (phrases), written through the fast path of :class:`MailPositions`."""
    field = TEXT(analyzer=analyzer, phrase=True)
    field.format = MailPositions(field_boost=field.format.field_boost)
    return field


def make_schema() -> Schema:
    plain = MailTokenizer(None)
    return Schema(
        blob_id=ID(stored=True, unique=True),
        state=STORED(),
        sender=TEXT(analyzer=plain, phrase=False),
        to=TEXT(analyzer=plain, phrase=False),
        cc=TEXT(analyzer=plain, phrase=False),
        bcc=TEXT(analyzer=plain, phrase=False),
        subject=_phrase_text(plain),
        text_en=_phrase_text(MailTokenizer("en")),
        text_fr=_phrase_text(MailTokenizer("fr")),
        filename=TEXT(analyzer=plain, phrase=False),
        # Minutes and bytes as 32-bit numbers with 8-bit tiers: 4 terms per value, and a range query
        # unions few terms (microsecond DATETIMEs made a 3-month range cost 1,800 term lookups).
        date=NUMERIC(int, bits=32, signed=False, shift_step=8, sortable=True),
        size=NUMERIC(int, bits=32, signed=False, shift_step=8),
        has=KEYWORD(lowercase=True),
        flags=KEYWORD(lowercase=True),
        account=KEYWORD(lowercase=True, commas=True),
        folder=KEYWORD(lowercase=True, commas=True),
        message_id=ID(),
        list_id=ID(),
    )


@dataclass(frozen=True)
class CatalogMessage:
    """What the catalog knows of one blob, enough to index it without reading others."""

    rowid: int
    blob_id: str
    size: int
    placements: tuple[tuple[str, str, str, str | None], ...]  # (account, folder, flags, internaldate)


def _flag_word(flag: str) -> str:
    return flag.lstrip("\\$").lower()


def placement_fields(placements: Sequence[tuple[str, str, str, str | None]]) -> dict[str, str]:
    """account, folder and flags fields from a blob's placements (gone ones included: it is an archive).

    A folder is indexed by its name and as ``account/name``, so ``folder:work/INBOX`` names one exactly.
    """
    accounts = sorted({account.replace(",", " ") for account, _, _, _ in placements})
    folders = sorted({folder.replace(",", " ") for _, folder, _, _ in placements})
    folders += sorted({f"{account}/{folder}".replace(",", " ") for account, folder, _, _ in placements})
    flags: set[str] = set()
    for _, _, flag_text, _ in placements:
        flags.update(_flag_word(f) for f in flag_text.split())
    if "seen" not in flags:
        flags.add("unread")
    return {"account": ",".join(accounts), "folder": ",".join(folders), "flags": " ".join(sorted(flags))}


def placement_digest(placements: Sequence[tuple[str, str, str, str | None]]) -> str:
    """What a document takes from its placements (account, folder, flags, the INTERNALDATE fallback), hashed.

    Equal digests mean equal documents, so a refresh can skip a message whose placements changed
    without changing its fields (after a UIDVALIDITY reset, every one of them).
    """
    fields = placement_fields(placements)
    first = _first_internaldate(placements)
    text = "\x1f".join((fields["account"], fields["folder"], fields["flags"], first.isoformat() if first else ""))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _first_internaldate(placements: Iterable[tuple[str, str, str, str | None]]) -> datetime | None:
    dates = []
    for *_, value in placements:
        if value:
            try:
                parsed = datetime.fromisoformat(value)
                dates.append(parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC))
            except (ValueError, OverflowError):  # 31-Dec-9999 23:59:59 -2359 is past datetime's range in UTC
                continue
    return min(dates) if dates else None


def build_document(
    message: CatalogMessage, raw: bytes, limits: ExtractLimits | None = None, truncated: bool = False
) -> tuple[dict, list[str]]:
    """The Whoosh fields of one message, and the problems met while reading it (``truncated``: see ``extract``)."""
    text = extract(raw, limits, truncated)
    return document_from_text(message, text), text.problems


def document_from_text(message: CatalogMessage, text: MessageText) -> dict:
    # Whoosh DATETIME wants naive UTC; the Date header wins, INTERNALDATE when it is missing or absurd.
    date = text.date
    if date is None or date.year < 1971 or date.year > 2100:
        date = _first_internaldate(message.placements)
    lang = text.language if text.language in LANGUAGES else "en"
    names = " ".join(text.attachment_names)
    # One text field holds everything a bare word should find, so a word query is 2 term lookups, not 6.
    parts = (text.subject, text.sender, text.to, text.cc, names, text.body, text.attachment_text)
    body = "\n".join(part for part in parts if part)
    has = []
    if text.has_attachment:
        has.append("attachment")
    if ".pdf" in names.lower():
        has.append("pdf")
    if text.list_id:
        has.append("list")
    document = {
        "blob_id": message.blob_id,
        "sender": text.sender,
        "to": text.to,
        "cc": text.cc,
        "bcc": text.bcc,
        "subject": text.subject,
        f"text_{lang}": body,
        "filename": names,
        "size": min(message.size, MAX_SIZE),
        "has": " ".join(has),
        "message_id": (text.message_id or "").strip("<> ").lower(),
        "list_id": text.list_id or "",
    }
    if date is not None:
        document["date"] = to_minutes(date)
    document.update(placement_fields(message.placements))
    return {key: value for key, value in document.items() if value not in ("", None)}
