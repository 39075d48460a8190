"""Opening the live index generation for reading: what a search needs of the on-disk layout, and no more.

The writer (:mod:`archiver.index.writer`) owns the layout (``CURRENT`` names the live ``g-…``
generation, replaced atomically by a rebuild); a search only opens what ``CURRENT`` names.  Kept
apart from the writer so that a search imports neither the indexing code nor the mail parser.
"""

from __future__ import annotations

import time
from pathlib import Path

from whoosh import index as whoosh_index
from whoosh.index import EmptyIndexError, FileIndex

from archiver.errors import ArchiverError
from archiver.index.hint import index_root
from archiver.index.mapped import read_segments_in_place


class SearchIndexError(ArchiverError):
    """The search index is missing, locked or unreadable."""


def open_live(archive_root: Path) -> FileIndex | None:
    """The live generation, or None when the archive has no usable index yet."""
    read_segments_in_place()
    root = index_root(archive_root)
    for attempt in range(5):  # a rebuild may swap generations between reading CURRENT and opening
        try:
            name = (root / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        path = root / name
        if not name.startswith("g-"):
            return None
        try:
            return whoosh_index.open_dir(str(path))
        except (EmptyIndexError, OSError) as exc:
            if attempt == 4:
                raise SearchIndexError(f"cannot open the search index {path}: {exc}; run `archiver reindex`") from exc
            time.sleep(0.05)
    return None
