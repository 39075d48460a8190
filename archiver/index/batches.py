"""Writing messages into a Whoosh segment: one catalog message becomes one document, whatever it holds.

Shared by the in-process writer (:mod:`archiver.index.writer`) and the worker
processes of a parallel build (:mod:`archiver.index.parallel`): what a
document is, how a hostile or unreadable message still gets one (its folders,
flags and date), the bookmark document, and the report an update returns.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from whoosh.index import FileIndex
from whoosh.writing import SegmentWriter

from archiver.catalog import Catalog
from archiver.errors import IntegrityError, StoreError
from archiver.index.analysis import fold
from archiver.index.documents import CatalogMessage, build_document, placement_digest
from archiver.index.hint import SCHEMA_VERSION
from archiver.index.values import STATE_ID
from archiver.store import BlobBackend

log = logging.getLogger("archiver.index")


#: What the index reads of one message: a bigger one (a 200 MB header line, a 1 GB attachment) is indexed by its
#: start, so the raw bytes held never outgrow the budget's allowance for "a message being parsed".
READ_LIMIT = 32 * 1024 * 1024


@dataclass
class IndexReport:
    """What an update or rebuild did."""

    indexed: int = 0
    refreshed: int = 0
    unchanged: int = 0  # placements changed, fields did not: document left as it was
    problems: int = 0
    seconds: float = 0.0
    rebuilt: bool = False
    skipped: str | None = None  # why nothing was done (e.g. another indexer holds the lock)
    errors: list[str] = field(default_factory=list)
    plan: MemoryPlan | None = None  # how the messages were indexed (processes, pool), when any were


@dataclass(frozen=True)
class MemoryPlan:
    """How an update indexes: ``procs`` worker processes (0: in this process) with ``pool_mb`` posting pools.

    ``budget_mb`` is the budget it was planned for (None: unbounded, a rebuild), ``base_mb`` what this
    process held when planning, and ``estimate_mb`` the peak the model expects for the whole tree.
    """

    procs: int
    pool_mb: int
    spawn: bool = False
    budget_mb: int | None = None
    base_mb: float = 0.0
    estimate_mb: float = 0.0


def forget_caches() -> None:
    """Empty the analyzer's word cache (bounded by its size) and give the
    freed pages back; between segments, where a budgeted writer has nothing else to drop."""
    fold.cache_clear()
    release_memory()


def release_memory() -> None:
    """Give the allocator's free pages back before measuring what this process holds (a backup leaves many)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL(None).malloc_trim(0)


ProgressFn = Callable[[int, int], None]  # (done, total)


def state_doc(rowid: int, seq: int) -> dict:
    return {
        "blob_id": STATE_ID,
        "state": {"rowid": rowid, "seq": seq, "schema": SCHEMA_VERSION, "at": time.time()},
    }


def catalog_messages(catalog: Catalog, rows: Sequence) -> list[CatalogMessage]:
    placements = catalog.placements_for_index([row["blob_id"] for row in rows])
    return [
        CatalogMessage(row["rowid"], row["blob_id"], row["size"], tuple(placements.get(row["blob_id"], ())))
        for row in rows
    ]


def document_for(store: BlobBackend, message: CatalogMessage) -> tuple[dict, list[str]]:
    """The document of one catalog message; a blob that cannot be read still gets one (placements only)."""
    try:
        raw = _read_for_index(store, message)
    except (IntegrityError, StoreError) as exc:
        return folders_only(message), [f"blob unreadable, only its folders indexed: {exc}"]
    if len(raw) < message.size:
        document, problems = build_document(message, raw, truncated=True)
        return document, [
            f"message of {message.size / 2**20:.3g} MB: only its first {len(raw) / 2**20:.3g} MB indexed",
            *problems,
        ]
    return build_document(message, raw)


def _read_for_index(store: BlobBackend, message: CatalogMessage) -> bytes:
    """The message's bytes, or their first :data:`READ_LIMIT` bytes when it is bigger (streamed, not inflated whole)."""
    if message.size <= READ_LIMIT:
        return store.get(message.blob_id, verify=False)
    with store.open(message.blob_id) as reader:  # a corrupt frame raises here: _write_message isolates it
        chunks = [reader.read(READ_LIMIT)]
        while (have := sum(map(len, chunks))) < READ_LIMIT and chunks[-1]:
            chunks.append(reader.read(READ_LIMIT - have))
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def folders_only(message: CatalogMessage) -> dict:
    """The document of a message whose bytes could not be read or indexed: its folders, flags and date."""
    document, _ = build_document(message, b"")
    return document


def failure_line(exc: BaseException) -> str:
    """One short line for index_problems: the exception's type and the start of its message."""
    text = " ".join(str(exc).split())[:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _write_message(writer: SegmentWriter, store: BlobBackend, message: CatalogMessage, replace: bool) -> list[str]:
    """Index one message; whatever it does, the batch goes on (the problems returned say what was lost).

    Any exception while reading or extracting it (a hostile message may raise anything, MemoryError
    included) or while Whoosh takes its document leaves a document of its folders, flags and date
    instead, so the bookmark moves past it and no later run trips over it again.  Whoosh drops a
    document it failed to take but may keep postings of its first fields: they stay with the same
    document number, so the stand-in document owns them (words of the same message), not the next one.
    """
    add = writer.update_document if replace else writer.add_document
    try:
        document, problems = document_for(store, message)
    except Exception as exc:
        document, problems = None, [f"text not indexed, only its folders: {failure_line(exc)}"]
    if document is not None:
        try:
            add(**document)
            return problems
        except Exception as exc:
            problems = [*problems, f"document refused by the index, only its folders indexed: {failure_line(exc)}"]
    log.warning("message %s only partly indexed: %s", message.blob_id[:12], problems[-1])
    add(**folders_only(message))
    return problems


def generation_name(ix: FileIndex) -> str:
    """The generation directory's name: what the catalog's placement digests are recorded for."""
    return Path(ix.storage.folder).name


def placement_digests(messages: Sequence[CatalogMessage]) -> dict[str, str]:
    return {message.blob_id: placement_digest(message.placements) for message in messages}


def write_batch(
    writer: SegmentWriter, store: BlobBackend, messages: Sequence[CatalogMessage], replace: bool
) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for message in messages:
        trouble = _write_message(writer, store, message, replace)
        if trouble:
            problems[message.blob_id] = trouble
    return problems
