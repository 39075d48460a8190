"""The Whoosh schema and how one blob becomes one document.

One document per unique message (blob).  The fields that come from the
message's bytes (addresses, subject, text, attachments, dates) are computed by
:func:`archiver.mail.textextract.extract`; the ones that come from where the
message lives (accounts, folders, flags) are computed from the catalog's
placements by :func:`placement_fields` and rewritten whenever a placement
changes.

Those placement fields come twice.  ``account``/``folder``/``flags`` merge
every account's placements: what an administrator searches.  ``owner``,
``owner_folder`` and ``owner_flag`` hold the same words prefixed with the
exact account name (``work\x00inbox``): what a search limited to some
accounts matches, so that a message shared by two accounts is found by
``folder:`` or ``is:`` only through the viewer's own placements (see
:mod:`archiver.index.visibility`).  The same holds for the date of a message
without a usable Date header, which comes from its placements' INTERNALDATE:
``owner_date`` holds each account's earliest (``work\x00`` + minutes, ten
digits) and a bare ``\x00`` marks such a document.

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
from archiver.index.values import MAX_SIZE, OWNER_SEP, date_key, owned, to_minutes
from archiver.mail.textextract import ExtractLimits, MessageText, extract

LANGUAGES = ("en", "fr")


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
        # Per account (exact names: "Work" and "work" are two accounts): see the module's docstring.
        owner=KEYWORD(commas=True),
        owner_folder=KEYWORD(commas=True),
        owner_flag=KEYWORD(),
        owner_date=KEYWORD(),
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


def _folder_words(account: str, folder: str) -> tuple[str, str]:
    """How a folder is searched: by its name and as ``account/name`` (lowercase, commas are separators)."""
    return folder.replace(",", " ").strip().lower(), f"{account}/{folder}".replace(",", " ").strip().lower()


def _flag_words(flag_texts: Iterable[str]) -> set[str]:
    flags = {_flag_word(f) for flag_text in flag_texts for f in flag_text.split()}
    if "seen" not in flags:
        flags.add("unread")
    return flags


def placement_fields(placements: Sequence[tuple[str, str, str, str | None]]) -> dict[str, str]:
    """The fields a blob's placements give it (gone ones included: it is an archive).

    A folder is indexed by its name and as ``account/name``, so ``folder:work/INBOX`` names one exactly.
    """
    accounts = sorted({account.replace(",", " ") for account, _, _, _ in placements})
    folders = sorted({word for account, folder, _, _ in placements for word in _folder_words(account, folder)})
    flags = _flag_words(flag_text for _, _, flag_text, _ in placements)
    owned_folders: set[str] = set()
    owned_flags: set[str] = set()
    for account in {account for account, _, _, _ in placements}:
        mine = [p for p in placements if p[0] == account]
        owned_folders.update(
            owned(account, word) for _, folder, _, _ in mine for word in _folder_words(account, folder)
        )
        owned_flags.update(owned(account, flag) for flag in _flag_words(flag_text for _, _, flag_text, _ in mine))
    return {
        "account": ",".join(accounts),
        "folder": ",".join(folders),
        "flags": " ".join(sorted(flags)),
        "owner": ",".join(accounts),
        "owner_folder": ",".join(sorted(owned_folders)),
        "owner_flag": " ".join(sorted(owned_flags)),
    }


def placement_digest(placements: Sequence[tuple[str, str, str, str | None]]) -> str:
    """What a document takes from its placements (account, folder, flags, the INTERNALDATE fallback), hashed.

    Equal digests mean equal documents, so a refresh can skip a message whose placements changed
    without changing its fields (after a UIDVALIDITY reset, every one of them).
    """
    fields = placement_fields(placements)
    text = "\x1f".join([*(fields[name] for name in sorted(fields)), placement_dates(placements)])
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


def placement_dates(placements: Sequence[tuple[str, str, str, str | None]]) -> str:
    """The ``owner_date`` field of a message dated by its placements: the marker, each account's earliest."""
    terms = [OWNER_SEP]
    for account in sorted({account for account, _, _, _ in placements}):
        first = _first_internaldate(p for p in placements if p[0] == account)
        if first is not None:
            terms.append(owned(account, date_key(to_minutes(first))))
    return " ".join(terms)


def build_document(
    message: CatalogMessage, raw: bytes, limits: ExtractLimits | None = None, truncated: bool = False
) -> tuple[dict, list[str]]:
    """The Whoosh fields of one message, and the problems met while reading it (``truncated``: see ``extract``)."""
    text = extract(raw, limits, truncated)
    return document_from_text(message, text), text.problems


def document_from_text(message: CatalogMessage, text: MessageText) -> dict:
    # Whoosh DATETIME wants naive UTC; the Date header wins, INTERNALDATE when it is missing or absurd.
    date = text.date
    placement_dated = date is None or date.year < 1971 or date.year > 2100
    if placement_dated:
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
    if placement_dated:
        document["owner_date"] = placement_dates(message.placements)
    return {key: value for key, value in document.items() if value not in ("", None)}
