"""How values are spelled in the index's fields: what the documents write and the queries look up.

Kept apart from :mod:`archiver.index.documents` (which turns a message into a document and so imports
the mail parser) so that the query side, all a search needs, imports neither.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: The ``blob_id`` of the one document that holds the index's bookmark (see :mod:`archiver.index.writer`).
STATE_ID = "state"
MAX_SIZE = 2**32 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Between the account name and the word in the ``owner_*`` fields (account names never hold it).
OWNER_SEP = "\x00"


def to_minutes(when: datetime) -> int:
    """The ``date`` field's value: whole minutes since 1970 UTC (naive datetimes are taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(MAX_SIZE, max(0, int((when - _EPOCH).total_seconds() // 60)))  # the field holds 32 bits


def owned(account: str, word: str) -> str:
    """The ``owner_folder`` / ``owner_flag`` term of ``word`` (already lowercased) in ``account``."""
    return f"{account}{OWNER_SEP}{word}"


def date_key(minutes: int) -> str:
    """An ``owner_date`` term's date part: minutes since 1970, zero-padded so terms sort as numbers."""
    return f"{minutes:010d}"
