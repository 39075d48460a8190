"""Keeping the index in step with the catalog: incremental updates and full rebuilds.

On disk (``<archive>/index/``)::

    CURRENT          name of the live generation (replaced atomically)
    g-<stamp>/       one Whoosh index; a rebuild writes a new one beside it
    update.lock      flock held by whoever writes the index

**Bookmark.** The index holds one ``state`` document with the catalog state it
reflects: the largest ``messages.rowid`` indexed and the last
``placement_changes.seq`` absorbed.  It is rewritten in the same Whoosh commit
as each batch, so after a crash at any point (between a catalog commit and the
index commit, or in the middle of a batch) the next :func:`update_index`
starts from exactly what the index holds.  SQLite serialises writers, so
rowids are assigned in commit order and a rowid bookmark never skips a row.

**Never blocking readers.** Whoosh writers add segment files and then replace
the table of contents; readers keep the generation they opened.  A rebuild
builds a whole new generation and then swaps ``CURRENT``; old generations are
deleted only after the swap, and open files stay readable on POSIX.

**Both cores.** A full build (or a large backlog) is done by worker processes,
see :mod:`archiver.index.parallel`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from whoosh import index as whoosh_index
from whoosh.index import EmptyIndexError, FileIndex
from whoosh.writing import SegmentWriter

from archiver.catalog import Catalog
from archiver.errors import ArchiverError, IntegrityError, StoreError
from archiver.index.documents import SCHEMA_VERSION, STATE_ID, CatalogMessage, build_document, make_schema
from archiver.index.fastwrite import FastSegmentWriter
from archiver.store import BlobStore

log = logging.getLogger("archiver.index")

BATCH = 500  # documents per incremental commit (each commit is a bookmark)
PARALLEL_FROM = 2000  # below this many new messages, one process is faster than starting workers


class SearchIndexError(ArchiverError):
    """The search index is missing, locked or unreadable."""


@dataclass
class IndexReport:
    """What an update or rebuild did."""

    indexed: int = 0
    refreshed: int = 0
    problems: int = 0
    seconds: float = 0.0
    rebuilt: bool = False
    skipped: str | None = None  # why nothing was done (e.g. another indexer holds the lock)
    errors: list[str] = field(default_factory=list)


ProgressFn = Callable[[int, int], None]  # (done, total)


def index_root(archive_root: Path) -> Path:
    return Path(archive_root) / "index"


def open_live(archive_root: Path) -> FileIndex | None:
    """The live generation, or None when the archive has no usable index yet."""
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


def read_state(ix: FileIndex) -> dict:
    with ix.searcher() as searcher:
        stored = searcher.document(blob_id=STATE_ID)
    return dict(stored["state"]) if stored else {"rowid": 0, "seq": 0, "schema": SCHEMA_VERSION}


def _state_doc(rowid: int, seq: int) -> dict:
    return {
        "blob_id": STATE_ID,
        "state": {"rowid": rowid, "seq": seq, "schema": SCHEMA_VERSION, "at": time.time()},
    }


def _new_generation(archive_root: Path) -> tuple[str, FileIndex]:
    root = index_root(archive_root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"g-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"
    path = root / name
    path.mkdir()
    return name, whoosh_index.create_in(str(path), make_schema())


def _switch(archive_root: Path, name: str) -> None:
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
def _update_lock(archive_root: Path, wait: float) -> Iterator[bool]:
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


def _catalog_messages(catalog: Catalog, rows: Sequence) -> list[CatalogMessage]:
    placements = catalog.placements_for_index([row["blob_id"] for row in rows])
    return [
        CatalogMessage(row["rowid"], row["blob_id"], row["size"], tuple(placements.get(row["blob_id"], ())))
        for row in rows
    ]


def document_for(store: BlobStore, message: CatalogMessage) -> tuple[dict, list[str]]:
    """The document of one catalog message; a blob that cannot be read still gets one (placements only)."""
    try:
        raw = store.get(message.blob_id, verify=False)
    except (IntegrityError, StoreError) as exc:
        document, _ = build_document(message, b"")
        return document, [f"blob unreadable, only its folders indexed: {exc}"]
    return build_document(message, raw)


def _write_batch(
    writer: SegmentWriter, store: BlobStore, messages: Sequence[CatalogMessage], replace: bool
) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for message in messages:
        document, trouble = document_for(store, message)
        if replace:
            writer.update_document(**document)
        else:
            writer.add_document(**document)
        if trouble:
            problems[message.blob_id] = trouble
    return problems


def _index_new(
    ix: FileIndex,
    archive_root: Path,
    catalog: Catalog,
    store: BlobStore,
    state: dict,
    upto_rowid: int,
    procs: int,
    progress: ProgressFn | None,
    report: IndexReport,
) -> None:
    """Index messages with rowid in (state.rowid, upto_rowid], committing a bookmark per batch."""
    pending = catalog.db.execute(
        "SELECT COUNT(*) FROM messages WHERE rowid > ? AND rowid <= ?", (state["rowid"], upto_rowid)
    ).fetchone()[0]
    if not pending:
        return
    fresh = state["rowid"] == 0
    if procs > 1 and pending >= PARALLEL_FROM:
        from archiver.index.parallel import index_parallel

        index_parallel(ix, archive_root, catalog, state, upto_rowid, pending, procs, progress, report)
        return
    rowid = state["rowid"]
    while rows := catalog.messages_for_index(rowid, upto_rowid, BATCH):
        messages = _catalog_messages(catalog, rows)
        writer = FastSegmentWriter(ix, timeout=60.0, limitmb=64)
        try:
            problems = _write_batch(writer, store, messages, replace=not fresh)
            rowid = rows[-1]["rowid"]
            writer.update_document(**_state_doc(rowid, state["seq"]))
        except BaseException:
            writer.cancel()
            raise
        writer.commit()
        catalog.record_index_problems(problems)
        report.indexed += len(messages)
        report.problems += len(problems)
        if progress:
            progress(report.indexed, pending)
    state["rowid"] = rowid


def _refresh_changed(
    ix: FileIndex, catalog: Catalog, store: BlobStore, state: dict, old_rowid: int, upto_seq: int, report: IndexReport
) -> None:
    """Rewrite the documents of blobs whose placements changed (their account/folder/flags fields)."""
    changed = catalog.changed_blobs_for_index(state["seq"], upto_seq)
    rows = [row for row in catalog.message_rows_for_index(changed) if row["rowid"] <= old_rowid]
    for start in range(0, max(len(rows), 1), BATCH):
        messages = _catalog_messages(catalog, rows[start : start + BATCH])
        writer = FastSegmentWriter(ix, timeout=60.0, limitmb=64)
        try:
            problems = _write_batch(writer, store, messages, replace=True)
            last = start + BATCH >= len(rows)
            writer.update_document(**_state_doc(state["rowid"], upto_seq if last else state["seq"]))
        except BaseException:
            writer.cancel()
            raise
        writer.commit()
        catalog.record_index_problems(problems)
        report.refreshed += len(messages)
    state["seq"] = upto_seq
    catalog.forget_placement_changes(upto_seq)


def update_index(
    archive_root: Path,
    catalog: Catalog,
    store: BlobStore,
    progress: ProgressFn | None = None,
    procs: int | None = None,
    wait: float = 30.0,
) -> IndexReport:
    """Bring the index up to the catalog's current state (creating it if there is none).

    Safe to call at any time from any process: writers serialise on a lock
    (waiting at most ``wait`` seconds, then reporting ``skipped``: the
    bookmark guarantees the next call catches up), readers are never blocked.
    """
    report = IndexReport()
    started = time.monotonic()
    procs = procs or min(2, os.cpu_count() or 1)
    if _up_to_date(archive_root, catalog):
        report.seconds = time.monotonic() - started
        return report
    with _update_lock(archive_root, wait) as locked:
        if not locked:
            report.skipped = "another process is writing the index; the next update catches up"
            return report
        ix = open_live(archive_root)
        state = read_state(ix) if ix is not None else None
        upto_rowid, upto_seq = catalog.index_high_water()
        if ix is None or state is None or state.get("schema") != SCHEMA_VERSION or state["rowid"] > upto_rowid:
            if ix is not None:
                log.warning("the search index does not match this catalog or archiver version: rebuilding it")
            # Live at once: every committed batch is kept (and searchable) even if this run dies.
            name, ix = _new_generation(archive_root)
            state = {"rowid": 0, "seq": 0}
            _commit_state(ix, state)
            _switch(archive_root, name)
            report.rebuilt = True
        old_rowid = state["rowid"]
        _index_new(ix, archive_root, catalog, store, state, upto_rowid, procs, progress, report)
        if upto_seq > state["seq"]:
            _refresh_changed(ix, catalog, store, state, old_rowid, upto_seq, report)
        _write_hint(archive_root, state)
    report.seconds = time.monotonic() - started
    return report


HINT_FILE = "STATE.hint"


def _write_hint(archive_root: Path, state: dict) -> None:
    """Leave the committed bookmark beside the live generation, so a no-change run need not open the index.

    The index's own state document stays the truth: the hint is written only after that commit,
    lives inside the generation it describes (a rebuild starts without one), and is trusted only
    when it matches the catalog's high-water marks (the same last message, no newer placement change);
    anything else opens the index as before.
    """
    live = _live_dir(archive_root)
    if live is None:
        return
    text = json.dumps({"rowid": state["rowid"], "seq": state["seq"], "schema": SCHEMA_VERSION})
    temp = live / f"{HINT_FILE}.{os.getpid()}.tmp"
    try:
        temp.write_text(text)
        os.replace(temp, live / HINT_FILE)
    except OSError as exc:  # only an optimisation: never fail the update for it
        log.debug("index hint not written: %s", exc)
        temp.unlink(missing_ok=True)


def _up_to_date(archive_root: Path, catalog: Catalog) -> bool:
    """True when the live generation's hint says it already reflects the catalog's current state."""
    live = _live_dir(archive_root)
    if live is None:
        return False
    try:
        hint = json.loads((live / HINT_FILE).read_text())
    except (OSError, ValueError):
        return False
    upto_rowid, upto_seq = catalog.index_high_water()
    # seq only grows (AUTOINCREMENT) but indexed changes are deleted, so the catalog's max may be lower.
    return (
        isinstance(hint, dict)
        and hint.get("schema") == SCHEMA_VERSION
        and hint.get("rowid") == upto_rowid
        and isinstance(hint.get("seq"), int)
        and upto_seq <= hint["seq"]
    )


def _live_dir(archive_root: Path) -> Path | None:
    root = index_root(archive_root)
    try:
        name = (root / "CURRENT").read_text().strip()
    except OSError:
        return None
    return root / name if name.startswith("g-") else None


def _commit_state(ix: FileIndex, state: dict) -> None:
    writer = FastSegmentWriter(ix, timeout=60.0)
    writer.update_document(**_state_doc(state["rowid"], state["seq"]))
    writer.commit()


def reindex(
    archive_root: Path, catalog: Catalog, store: BlobStore, progress: ProgressFn | None = None, procs: int | None = None
) -> IndexReport:
    """Rebuild the index from scratch into a new generation, then swap it in.

    Searches keep using the old generation until the swap.  Holds the update
    lock throughout, so a backup finishing meanwhile leaves its messages to
    the catch-up pass done here before the swap, or to the next update.
    """
    report = IndexReport(rebuilt=True)
    started = time.monotonic()
    procs = procs or min(2, os.cpu_count() or 1)
    with _update_lock(archive_root, wait=600.0) as locked:
        if not locked:
            raise SearchIndexError("another process is writing the search index; try again when it is done")
        name, ix = _new_generation(archive_root)
        try:
            state = {"rowid": 0, "seq": 0}
            upto_rowid, upto_seq = catalog.index_high_water()
            _index_new(ix, archive_root, catalog, store, state, upto_rowid, procs, progress, report)
            state["seq"] = upto_seq
            _commit_state(ix, state)
            # Catch up with what was committed to the catalog during the build.
            upto_rowid, upto_seq = catalog.index_high_water()
            old_rowid = state["rowid"]
            _index_new(ix, archive_root, catalog, store, state, upto_rowid, 1, None, report)
            if upto_seq > state["seq"]:
                _refresh_changed(ix, catalog, store, state, old_rowid, upto_seq, report)
            catalog.forget_placement_changes(state["seq"])
        except BaseException:
            shutil.rmtree(index_root(archive_root) / name, ignore_errors=True)
            raise
        _switch(archive_root, name)
    report.seconds = time.monotonic() - started
    return report
