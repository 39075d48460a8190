"""Open searchers shared by a process's requests: a small pool per archive, always of the live index.

Opening a searcher reads the generation's table of contents and opens every
segment's files, which costs more than most queries; the per-reader caches of
:mod:`archiver.index.fastmatch` (decoded postings, length norms, the date
column) then make the next queries on that searcher cheap.  So searchers are
kept between requests.  A Whoosh searcher is not safe for two threads at once
(its files are read with seek + read), so each request checks one out, alone.

Why a pool and not one searcher per thread (as before): a web server has
many threads, but the query engine is pure Python and holds the GIL, so
searches running side by side in one process only share one core more
finely, and each extra searcher has its own caches to warm and its own files
open.  Measured under twenty concurrent users, every searcher added raised
the CPU a search request costs, so by default one searcher serves a process:
a request that finds it busy waits for it (first come, first served, the
wait bounded by the query in front), and browsing, snippets and pages go on
in the other threads meanwhile.

Freshness: every checkout compares the live key, the generation named in
``index/CURRENT`` (a rebuild swaps it) and the newest Whoosh table of
contents in it (an update commits one), with the key of the searcher it
would hand out.  An idle searcher of an older key is closed, one checked out
by a request is closed when given back: a search never sees an index older
than the one live when it started, and superseded files are let go.
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from whoosh.index import FileIndex
from whoosh.searching import Searcher

from archiver.index.hint import index_root
from archiver.index.live import SearchIndexError, open_live

#: Searchers open at once per archive and process (and so searches running at once in it).
SEARCHERS = 1

#: Seconds a search waits for a busy searcher before it gives up with a clear error (never an endless wait).
BUSY_SECONDS = 60.0

Key = tuple[str, int]  # (generation directory named in CURRENT, Whoosh TOC generation)


class SearcherPool:
    """The searchers of one archive's live index; :meth:`checkout` lends one to one caller at a time."""

    def __init__(self, archive_root: Path, size: int = SEARCHERS) -> None:
        self.root = index_root(archive_root)
        self.archive_root = archive_root
        self.size = size
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[tuple[Key, Searcher]] = []
        self._index: tuple[str, FileIndex] | None = None  # the live generation's index, to read its newest TOC
        self._closed = False

    def live_key(self) -> Key | None:
        """The key of the index live now; None when there is none (or it cannot be read: the opener says why)."""
        try:
            name = (self.root / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        with self._lock:
            known = self._index
        if known is None or known[0] != name:
            return None
        try:
            return name, known[1].latest_generation()
        except OSError:  # the generation was swapped out and deleted under us
            return None

    @contextmanager
    def checkout(self) -> Iterator[Searcher]:
        """A searcher of the live index for this caller alone; raises SearchIndexError when there is no index.

        If the caller's code raises (a rebuild deleted a file under it, say), the
        searcher is closed rather than given back.
        """
        if not self._slots.acquire(timeout=BUSY_SECONDS):
            raise SearchIndexError(f"the search index stayed busy for {BUSY_SECONDS:g} s: try again in a moment")
        try:
            searcher, key = self._take()
            try:
                yield searcher
            except BaseException:
                _close([searcher])
                raise
            self._give_back(searcher, key)
        finally:
            self._slots.release()

    def _take(self) -> tuple[Searcher, Key]:
        live = self.live_key()
        stale: list[Searcher] = []
        found = None
        with self._lock:
            keep = []
            for entry in self._idle:
                if entry[0] != live:
                    stale.append(entry[1])
                elif found is None:
                    found = entry
                else:
                    keep.append(entry)
            self._idle = keep
        _close(stale)
        if found is not None:
            return found[1], found[0]
        return self._open()

    def _open(self) -> tuple[Searcher, Key]:
        ix = open_live(self.archive_root)
        if ix is None:
            raise SearchIndexError("the archive has no search index yet: run `archiver reindex` (or a backup)")
        name = Path(ix.storage.folder).name
        searcher = ix.searcher()
        with self._lock:
            self._index = (name, ix)
        return searcher, (name, searcher.ixreader.generation())

    def _give_back(self, searcher: Searcher, key: Key) -> None:
        if key != self.live_key():
            _close([searcher])
            return
        with self._lock:
            if self._closed:
                extra = [(key, searcher)]
            else:
                self._idle.append((key, searcher))
                extra = self._idle[: -self.size] if len(self._idle) > self.size else []
                del self._idle[: len(extra)]
        _close([old for _, old in extra])

    def close(self) -> None:
        """Close the idle searchers; those checked out are closed when given back."""
        with self._lock:
            idle, self._idle, self._index, self._closed = self._idle, [], None, True
        _close([searcher for _, searcher in idle])


def _close(searchers: list[Searcher]) -> None:
    """Close ``searchers`` and let their files go now.

    Whoosh's readers sit in reference cycles that keep a closed segment's
    memory map alive until the cycle collector runs, which in a busy server
    may be much later: meanwhile the disk space of a replaced generation
    stays in use.  So a collection follows; it happens only when the index
    changed, not per search.
    """
    for searcher in searchers:
        searcher.close()
    if searchers:
        gc.collect()


#: Archives whose searchers a process keeps (a server has one; a test run opens many, one after the other).
ARCHIVES = 4
_pools: OrderedDict[Path, SearcherPool] = OrderedDict()
_pools_lock = threading.Lock()


def pool_for(archive_root: Path) -> SearcherPool:
    """This process's pool of searchers for the archive at ``archive_root`` (made at first use).

    Only the :data:`ARCHIVES` most recently searched archives keep theirs: the
    others' searchers are closed, so their files are let go.
    """
    key = Path(archive_root).resolve()
    evicted = []
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = SearcherPool(key)
        _pools.move_to_end(key)
        while len(_pools) > ARCHIVES:
            evicted.append(_pools.popitem(last=False)[1])
    for old in evicted:
        old.close()
    return pool


def close_all() -> None:
    """Close every kept searcher (a server stopping, a test that wants its files back)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


@contextmanager
def live_searcher(archive_root: Path) -> Iterator[Searcher]:
    """A searcher of the archive's live index, lent for the ``with`` block (see :class:`SearcherPool`)."""
    with pool_for(archive_root).checkout() as searcher:
        yield searcher
