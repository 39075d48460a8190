"""Attachment names from hostile mail, shown on a page and offered as a download name.

A name is whatever the sender wrote.  A right-to-left override (U+202E) makes
``invoice\u202efdp.exe`` *look* like ``invoice…exe.pdf``; other format and
control characters hide or reorder text the same way.  On the page they are
shown as visible escapes (``⟨U+202E⟩``), never applied.  For the download,
the name goes into ``Content-Disposition`` as RFC 6266 / RFC 8187
``filename*=UTF-8''…`` (percent-encoded UTF-8, so every name is valid in a
header) with those characters and path separators replaced, plus an ASCII
``filename=`` fallback for old clients.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

MAX_NAME = 200  # characters kept of a download name
_HIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}  # controls, format (bidi, zero-width), unassigned


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in _HIDDEN_CATEGORIES


def shown_name(name: str) -> str:
    """``name`` for a page: every control, bidi or other invisible character written out as ``⟨U+XXXX⟩``."""
    return "".join(f"⟨U+{ord(c):04X}⟩" if _hidden(c) else c for c in name)


def download_name(name: str) -> str:
    """``name`` safe to save: no invisible or reordering characters, no path separators, not empty or dots only."""
    cleaned = "".join("_" if _hidden(c) or c in "/\\" else c for c in name).strip().strip(".")
    return cleaned[:MAX_NAME] or "download"


def content_disposition(name: str) -> str:
    """An ``attachment`` Content-Disposition valid for any name: ASCII ``filename`` and UTF-8 ``filename*``."""
    safe = download_name(name)
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in safe)[:100]
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(safe, safe='')}"
