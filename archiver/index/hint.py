"""Whether the search index is up to date, answered without Whoosh.

(The package loads its Whoosh-backed modules lazily, so importing this one stays cheap.)

A no-change backup run must not pay for importing Whoosh (and opening the
index) only to learn that there is nothing to index: the writer leaves the
committed bookmark in a small hint file inside the live generation, and this
module reads it against the catalog's high-water marks.  The index's own state
document stays the truth: the hint is written only after that commit, lives
inside the generation it describes (a rebuild starts without one), and is
trusted only when it matches exactly; anything else opens the index.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from archiver.archive import index_root

if TYPE_CHECKING:
    from archiver.catalog import Catalog

#: Bump when the schema or the analysis changes: an index of another version is rebuilt.
SCHEMA_VERSION = 3
HINT_FILE = "STATE.hint"


def live_dir(archive_root: Path) -> Path | None:
    """The live generation's directory (named in ``index/CURRENT``), None when there is none."""
    root = index_root(archive_root)
    try:
        name = (root / "CURRENT").read_text().strip()
    except OSError:
        return None
    return root / name if name.startswith("g-") else None


def bookmark(archive_root: Path) -> tuple[int, int] | None:
    """The (messages rowid, placement change seq) the live generation's last completed update left in its hint.

    None when there is no index, no hint (a generation being built) or one of another schema (to be
    rebuilt): then nothing can be assumed indexed.  A writer killed after the hint was written may have
    committed more than it says, never less, so a lag computed from it errs on the safe side.
    """
    live = live_dir(archive_root)
    if live is None:
        return None
    try:
        hint = json.loads((live / HINT_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(hint, dict) or hint.get("schema") != SCHEMA_VERSION:
        return None
    rowid, seq = hint.get("rowid"), hint.get("seq")
    return (rowid, seq) if isinstance(rowid, int) and isinstance(seq, int) else None


def up_to_date(archive_root: Path, catalog: Catalog) -> bool:
    """True when the live generation's hint says it already reflects the catalog's current state."""
    mark = bookmark(archive_root)
    if mark is None:
        return False
    upto_rowid, upto_seq = catalog.index_high_water()
    # seq only grows (AUTOINCREMENT) but indexed changes are deleted, so the catalog's max may be lower.
    return mark[0] == upto_rowid and upto_seq <= mark[1]
