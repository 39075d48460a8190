"""Fetch → store → record, overlapped, for every source (IMAP and POP3 runs share it).

While batch *k* is hashed, compressed, made durable and then recorded on the
storer thread, the source already fetches batch *k + 1* on the connection's
thread.  Batch *k* is recorded in the catalog only after its blobs are durable
(``put_batch`` returned), one transaction per batch, on the same thread and in
the same job, so a run killed at any instant leaves every recorded message
readable and at most one batch of durable-but-unrecorded blobs, which the next
run finds again by hash.

The catalog's commit is on the storer thread, not the connection's, because
the commit waits for the disk (``synchronous=FULL``): on the connection's
thread it stopped fetching for a fifth of a backup.  The connection's thread
does not use the catalog while a folder's batches are in flight (it waits for
the last one when the folder's ``with`` block ends), so the two never share
the connection.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from archiver.archive import Archive
from archiver.backup.report import FolderOutcome
from archiver.catalog import FolderRecord, NewPlacement
from archiver.errors import ArchiverError
from archiver.mail.headers import summarize_headers
from archiver.progress import Progress
from archiver.sources.model import FetchedMessage
from archiver.sources.spool import SpooledBody
from archiver.store import BlobBackend, StoredBlob

log = logging.getLogger("archiver.pipeline")


def store_messages(store: BlobBackend, messages: Sequence[FetchedMessage]) -> list[StoredBlob]:
    """Every message's blob made durable; one result per message, in order.

    Messages in memory go through :meth:`BlobBackend.put_batch` together; spooled ones
    (over the spool threshold) one by one through :meth:`BlobBackend.put_file`, streaming.
    """
    in_memory = [m.raw for m in messages if isinstance(m.raw, bytes)]
    batch = iter(store.put_batch(in_memory) if in_memory else [])
    stored = []
    for message in messages:
        if isinstance(message.raw, SpooledBody):
            with message.raw.open() as source:
                stored.append(store.put_file(source, message.raw.size))
        else:
            stored.append(next(batch))
    return stored


def discard_spooled(messages: Sequence[FetchedMessage]) -> None:
    """Remove the files of spooled messages (stored, or given up on)."""
    for message in messages:
        if isinstance(message.raw, SpooledBody):
            message.raw.discard()


def placements_for(messages: Sequence[FetchedMessage], stored: Sequence) -> list[NewPlacement]:
    """The catalog rows of fetched messages whose blobs ``stored`` describes (same order).

    A spooled message's header summary is read from its first HEAD_BYTES.
    """
    return [
        NewPlacement(
            uid=message.uid,
            blob_id=blob.blob_id,
            flags=message.flags,
            internaldate=message.internaldate.isoformat() if message.internaldate else None,
            size=message.size,
            stored_size=blob.stored_size,
            headers=summarize_headers(message.raw if isinstance(message.raw, bytes) else message.raw.head()),
        )
        for message, blob in zip(messages, stored, strict=True)
    ]


class StorePipeline:
    """One folder's batches: ``add`` each fetched batch; leaving the ``with`` block records the last one.

    On an exception inside the block (the connection dropped mid-folder, the run time ran out) the
    batch already being stored is still recorded, so committed work never depends on the fetch that
    failed; a failing commit is never retried there (it would fail the same way).
    """

    def __init__(
        self,
        archive: Archive,
        storer: ThreadPoolExecutor,
        run_id: int,
        record: FolderRecord,
        uidvalidity: int,
        outcome: FolderOutcome,
        progress: Progress,
    ) -> None:
        self._archive = archive
        self._storer = storer
        self._run_id = run_id
        self._record = record
        self._uidvalidity = uidvalidity
        self._outcome = outcome
        self._progress = progress
        self._pending: tuple[Future, list[FetchedMessage]] | None = None

    def add(self, messages: list[FetchedMessage]) -> None:
        """Wait for the previous batch (stored and recorded while this one was fetched), then start this one."""
        previous, self._pending = self._pending, None
        if previous is not None:
            self._finish(*previous)
        self._pending = (self._storer.submit(self._store_and_record, messages), messages)

    def __enter__(self) -> StorePipeline:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        previous, self._pending = self._pending, None
        if previous is None:
            return
        if exc_type is None:
            self._finish(*previous)
            return
        try:  # the last batch is still stored and recorded; then the original failure propagates
            self._finish(*previous)
        except ArchiverError as commit_error:
            log.error("could not record the last batch of %s: %s", self._record.name, commit_error)

    def _store_and_record(self, messages: list[FetchedMessage]) -> int:
        """The storer's job: blobs durable first, then one catalog transaction; returns the messages it added."""
        try:
            placements = placements_for(messages, store_messages(self._archive.store, messages))
        finally:
            discard_spooled(messages)
        totals = self._archive.catalog.add_placements(self._run_id, self._record.id, self._uidvalidity, placements)
        return totals.messages_new

    def _finish(self, job: Future, messages: list[FetchedMessage]) -> None:
        self._outcome.new += job.result()
        self._progress.advance(len(messages), sum(m.size for m in messages))


__all__ = ["StorePipeline", "discard_spooled", "placements_for", "store_messages"]
