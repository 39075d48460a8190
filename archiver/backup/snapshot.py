"""After a run: the catalog snapshot that makes the blob store alone enough to rebuild the archive."""

from __future__ import annotations

import logging

from archiver.archive import Archive
from archiver.errors import ArchiverError

log = logging.getLogger("archiver.backup")


def snapshot_after_run(archive: Archive) -> str | None:
    """Keep a catalog snapshot in the store (when it keeps them); the problem line if that failed, else None.

    A failed snapshot loses nothing (the mail and the catalog are safe, and the
    next run takes a newer one), but the run says so: the offsite copy is behind.
    """
    try:
        name = archive.keep_catalog_snapshot()
    except ArchiverError as exc:
        log.error("catalog snapshot not stored: %s", exc)
        return f"catalog snapshot not stored: {exc}"
    if name is not None:
        log.info("catalog snapshot %s stored", name)
    return None
