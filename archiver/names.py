"""Folder and file names carried to other systems: an IMAP server (restore) or a filesystem (export).

An archived folder name is whatever a server once reported: it may be empty, absolute (``/abs``),
hold empty components (``a//b``), ``.`` or ``..`` components, or be 10 kB long.  These functions
turn such names into components the destination accepts, decided here rather than left to the
destination (which may refuse them, or worse, give ``..`` its filesystem meaning).  Pure: no I/O.

Restore mapping (:func:`folder_parts`): empty components are dropped (``a//b`` → ``a/b``, ``/abs``
→ ``abs``), a ``.`` component becomes ``(dot)``, ``..`` becomes ``(dot-dot)``, and a name with no
component left (``""``, ``/``) becomes ``(unnamed)``; never INBOX.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable

from imapclient import imap_utf7

UNNAMED = "(unnamed)"
MAX_NAME_BYTES = 100  # what every exported file or directory name is held to (filesystems allow 255)
_DOT_NAMES = {".": "(dot)", "..": "(dot-dot)"}
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{n}" for p in ("COM", "LPT") for n in range(10)}


def _without_surrogates(text: str) -> str:
    """``text`` with lone surrogates (modified UTF-7 can decode to them; no file system or UTF-8
    encoder takes them) replaced by ``_``."""
    return "".join("_" if "\ud800" <= ch <= "\udfff" else ch for ch in text)


def split_folder(name: str, delimiter: str | None) -> list[str]:
    """A folder name's components on its own server's hierarchy delimiter (INBOX is never split)."""
    if not delimiter or name.upper() == "INBOX":
        return [name]
    return name.split(delimiter)


def folder_parts(name: str, delimiter: str | None) -> tuple[str, ...]:
    """The components a restore creates for a source folder (the mapping in the module docstring)."""
    parts = tuple(_DOT_NAMES.get(part, part) for part in split_folder(name, delimiter) if part)
    return parts or (UNNAMED,)


def safe_component(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """A file or directory name valid on every common filesystem.

    No control characters or ``<>:"/\\|?*``, no reserved device names (CON, NUL, COM1…), no
    leading dot, no trailing dot or space, NFC, at most ``max_bytes`` UTF-8 bytes, never empty.
    """
    name = unicodedata.normalize("NFC", _without_surrogates(name))
    name = "".join("_" if ch in '<>:"/\\|?*' or ord(ch) < 32 or ord(ch) == 127 else ch for ch in name)
    name = name.strip().rstrip(". ")
    if name.startswith("."):
        name = "_" + name[1:]
    if name.split(".")[0].strip().upper() in _RESERVED:
        name = "_" + name
    name = name.encode()[:max_bytes].decode("utf-8", "ignore").rstrip(". ")
    return name or "_"


def unique_name(taken: set[str], name: str, suffix: str = "", fold: Callable[[str], str] = str.casefold) -> str:
    """``name + suffix``, or with ``~2``, ``~3``… before the suffix if taken (compared after ``fold``:
    case-insensitively by default, as on Windows and macOS filesystems)."""
    candidate = name + suffix
    number = 1
    while fold(candidate) in taken:
        number += 1
        candidate = f"{name}~{number}{suffix}"
    taken.add(fold(candidate))
    return candidate


def maildir_dirname(parts: tuple[str, ...]) -> str:
    """The Maildir++ directory of a folder other than INBOX: ``.a.b`` for ``a/b``.

    Components are modified-UTF-7 encoded, a ``.`` or ``/`` inside one becomes ``_``, an empty one
    (``a//b``, ``""``) becomes ``_`` as in the other export formats, so no folder lands on the root
    (INBOX).  At most :data:`MAX_NAME_BYTES` bytes: a longer name keeps its head (never cut inside
    an ``&…-`` sequence, so readers can still decode it) and a hash of the whole name.
    """
    encoded = [
        imap_utf7.encode(_without_surrogates(p)).decode("ascii").replace(".", "_").replace("/", "_") or "_"
        for p in parts
    ]
    name = "." + ".".join(encoded)
    if len(name) <= MAX_NAME_BYTES:
        return name
    tag = "~" + hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:8]
    head = name[: MAX_NAME_BYTES - len(tag) - 1]  # room for a "-" that closes a cut encoded run
    start = head.rfind("&")
    if start > head.rfind("-"):  # an encoded run cut short: keep whole 8-character groups, close it
        whole = (len(head) - start - 1) // 8 * 8
        head = head[: start + 1 + whole] + "-" if whole else head[:start]
    return (head.rstrip(".") or ".") + tag


def decode_maildir_component(part: str) -> str:
    """A Maildir++ name component back to a folder name; one that is no valid modified UTF-7 (a
    foreign Maildir may hold anything) stays as it is instead of failing the import."""
    if "&" not in part:
        return part
    try:
        return imap_utf7.decode(part.encode("ascii"))
    except (UnicodeError, ValueError):
        return part
