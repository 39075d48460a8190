"""Gmail (X-GM-EXT-1): one message, many labels, stored once.

Gmail shows one message in ``[Gmail]/All Mail`` and again in a folder per
label, each with its own UID; ``X-GM-MSGID`` is the same in all of them.  When
the server announces ``X-GM-EXT-1`` the backup

* syncs the ``\\All`` folder first (the source of truth) and records each
  placement's ``X-GM-MSGID`` and ``X-GM-LABELS`` (``message_labels``, catalog
  migration 3);
* for a label folder, looks up the new UIDs' ``X-GM-MSGID`` among the
  account's known messages and records a placement pointing at the same blob
  without downloading the body again.

Servers without the extension get the same "no second download" through the
header fingerprint (:mod:`archiver.backup.fingerprint`).  The parsing here is
pure and unit-tested on recorded responses; the catalog stores what it finds
(:mod:`archiver.catalog.labels`).
"""

from __future__ import annotations

from imapclient import imap_utf7

ALL_MAIL_SPECIAL_USE = "\\All"


def parse_labels(value: object) -> tuple[str, ...]:
    """X-GM-LABELS as imapclient's parser returns it → sorted, decoded label names.

    Labels come as atoms, quoted strings or literals, in modified UTF-7; system
    labels keep their backslash (``\\Inbox``, ``\\Important``).
    """
    if value is None:
        return ()
    if isinstance(value, bytes | str | int):
        value = (value,)
    labels: set[str] = set()
    for item in value:  # type: ignore[union-attr]
        if isinstance(item, int):
            labels.add(str(item))
            continue
        raw = item if isinstance(item, bytes) else str(item).encode()
        try:
            text = imap_utf7.decode(raw)
        except Exception:
            text = raw.decode("utf-8", "replace")
        if text:
            labels.add(text)
    return tuple(sorted(labels))


def sync_order(folders: list, special_use_of=lambda f: f.special_use) -> list:
    """Folders with ``\\All`` first, so label folders find their messages already archived."""
    return sorted(folders, key=lambda f: special_use_of(f) != ALL_MAIL_SPECIAL_USE)
