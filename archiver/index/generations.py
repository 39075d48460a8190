"""The index's generations on disk, and the lock its writers share.

On disk (``<archive>/index/``)::

    CURRENT          name of the live generation (replaced atomically)
    g-<stamp>/       one Whoosh index; a rebuild writes a new one beside it
    update.lock      flock held by whoever writes the index (an update, a rebuild, a compaction)

Used by the writers (:mod:`archiver.index.writer`, :mod:`archiver.index.compaction`) and the searcher.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from whoosh import index as whoosh_index
from whoosh.index import FileIndex

from archiver.index.documents import make_schema
from archiver.index.hint import SCHEMA_VERSION, index_root
from archiver.index.values import STATE_ID


def read_state(ix: FileIndex) -> dict:
    with ix.searcher() as searcher:
        stored = searcher.document(blob_id=STATE_ID)
    return dict(stored["state"]) if stored else {"rowid": 0, "seq": 0, "schema": SCHEMA_VERSION}


def new_generation(archive_root: Path) -> tuple[str, FileIndex]:
    root = index_root(archive_root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"g-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"
    path = root / name
    path.mkdir()
    return name, whoosh_index.create_in(str(path), make_schema())


def switch(archive_root: Path, name: str) -> None:
    """Make generation ``name`` live (atomic rename), then delete the others."""
    root = index_root(archive_root)
    temp = root / f"CURRENT.{os.getpid()}.tmp"
    temp.write_text(name + "\n")
    fd = os.open(temp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, root / "CURRENT")
    for entry in root.iterdir():
        if entry.is_dir() and entry.name.startswith("g-") and entry.name != name:
            shutil.rmtree(entry, ignore_errors=True)


@contextmanager
def update_lock(archive_root: Path, wait: float) -> Iterator[bool]:
    """flock on ``index/update.lock``; yields False if another writer kept it for ``wait`` seconds."""
    root = index_root(archive_root)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / "update.lock", os.O_RDWR | os.O_CREAT, 0o640)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.2)
        yield True
    finally:
        os.close(fd)
