"""How a backup run survives faults from outside: lost connections and its own time limit.

Both IMAP and POP3 runs use these.  The contract they rely on is the catalog's:
every batch is committed (blobs durable, then one catalog transaction) before
the next is fetched, and a folder's sync state is saved only once the folder is
complete.  So after a reconnect the folder is simply synced again from the
catalog, which fetches only what was not committed; and a run stopped by its
time limit leaves nothing half-done for the next run but the work itself.

Disk full and other store/catalog failures are not handled here on purpose:
they stop the run at once (see :data:`FATAL_ERRORS`), since every other folder
would fail the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from archiver.catalog import Catalog
from archiver.errors import ArchiverError, CatalogError, ConnectError, StoreError, TLSError
from archiver.times import format_duration

log = logging.getLogger("archiver.backup")
K = TypeVar("K")

# The archive itself cannot take more: trying the other folders would only repeat the same failure.
FATAL_ERRORS: tuple[type[Exception], ...] = (StoreError, CatalogError)
# A connection that worked and then failed.  A TLS error after the handshake is the transport breaking
# (an EOF inside a TLS record), not a certificate problem; a reconnect that hits a real TLS problem
# raises TLSError from connect() and ends the retries at once.
DROPPED: tuple[type[Exception], ...] = (ConnectError, TLSError)
DEFAULT_RECONNECT_ATTEMPTS = 5
FIRST_DELAY = 1.0  # seconds; doubled for each further attempt (1, 2, 4, 8, 16: about 31 s in all)
# A folder whose connection drops this many times in a row with no batch committed in between is given up
# for the run.  Enough for PoisonedMessages to isolate a bad message (2 drops in the header look, 2 on its batch).
MAX_DROPS_WITHOUT_PROGRESS = 5


class RunTimeLimit(Exception):  # a signal between run loops, never shown to anyone as such
    """Raised by a run loop once :class:`RunClock` says the run's time is up (after the batch was committed)."""


class RunClock:
    """The run's time limit; ``limit`` None or 0 means unbounded."""

    def __init__(self, limit: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit or None
        self._clock = clock
        self._deadline = None if self.limit is None else clock() + self.limit

    @property
    def deadline(self) -> float | None:
        """When the run's time is up, on the clock's scale (``time.monotonic``); None when unbounded."""
        return self._deadline

    def expired(self) -> bool:
        return self._deadline is not None and self._clock() >= self._deadline

    def remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - self._clock())

    def check(self) -> None:
        """Raise :class:`RunTimeLimit` when the time is up: call it where stopping leaves nothing uncommitted."""
        if self.expired():
            raise RunTimeLimit

    def problem(self, account: str) -> str:
        return (
            f"{account}: stopped after the run time limit ({format_duration(self.limit or 0)}); the next run continues"
        )


@dataclass
class PoisonedMessages:
    """Finds a message whose fetch kills the connection every time, so one bad message cannot stop a folder.

    Seen on Dovecot: a message file it cannot read makes it answer ``BYE Internal error`` and hang up.
    A batch that drops the connection twice in a row has its messages fetched one by one; a single
    message that then drops it again is skipped for this run (recorded as an error, retried next run).
    A one-off drop (server restart, network) changes nothing: the batch is simply fetched again.
    The header-only look that recognises known copies (archiver.backup.remap) reads the same broken
    file: after two drops there it is left out for the folder, so the bodies are fetched and the
    culprit isolated (correct either way: a copy fetched in full still maps onto the same blob).
    """

    in_flight: tuple[int, ...] = ()
    suspects: set[int] = field(default_factory=set)
    skipped: set[int] = field(default_factory=set)
    stub_drops: int = 0
    _in_stubs: bool = False
    _last_dropped: tuple[int, ...] = ()

    @property
    def skip_stubs(self) -> bool:
        return self.stub_drops >= 2

    def fetching(self, uids: Iterable[int]) -> None:
        self.in_flight = tuple(uids)
        self._in_stubs = False  # a header look left unfinished (a throttled answer) is over: bodies now

    def fetching_stubs(self) -> None:
        self._in_stubs = True

    def fetched(self) -> None:
        self.in_flight = ()
        self._in_stubs = False

    def dropped(self) -> bool:
        """Note a dropped connection; True when it isolated a poisoned message (which counts as progress)."""
        batch, self.in_flight = self.in_flight, ()
        if self._in_stubs:
            self._in_stubs = False
            self.stub_drops += 1
            return False
        if not batch:
            return False
        if len(batch) == 1 and batch[0] in self.suspects:
            self.skipped.add(batch[0])
            return True
        if batch == self._last_dropped:
            self.suspects.update(batch)
        self._last_dropped = batch
        return False

    def split(self, batches: Iterable[list[int]]) -> Iterator[list[int]]:
        """The batches, with every batch holding a suspect broken into single messages."""
        for batch in batches:
            if self.suspects.intersection(batch):
                yield from ([uid] for uid in batch)
            else:
                yield batch


def oversized(sizes: Mapping[K, int], keys: Iterable[K], limit: int) -> dict[K, int]:
    """The messages among ``keys`` whose announced size is over ``max_message_bytes``: skipped, never fetched."""
    return {key: sizes[key] for key in keys if sizes.get(key, 0) > limit}


def too_big_message(too_big: Mapping[K, int], limit: int) -> str:
    """One line for the run: which messages were skipped for their size, and what to change to get them."""
    shown = ", ".join(f"{key} ({size / 2**20:.1f} MB)" for key, size in list(too_big.items())[:10])
    return (
        f"skipped {len(too_big)} message(s) larger than max_message_bytes ({limit / 2**20:.1f} MB): {shown}; "
        "raise max_message_bytes to archive them"
    )


def backoff_delays(attempts: int, first: float = FIRST_DELAY) -> list[float]:
    """The waits before each reconnect attempt: exponential, so a restarting server gets time to come back."""
    return [first * 2**n for n in range(max(attempts, 0))]


def reconnect(
    connect: Callable[[], object],
    where: str,
    cause: Exception,
    attempts: int,
    clock: RunClock,
    context: str = "",
    first_delay: float = FIRST_DELAY,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Connect again after ``cause`` dropped the connection, waiting 1 s, 2 s, 4 s… between attempts.

    Each attempt is logged at WARNING.  Only a connection failure is retried: a refused login or an
    untrusted certificate on reconnect is raised as it is.  When every attempt failed, raises one
    :class:`ConnectError` line that says so; :class:`RunTimeLimit` when the run's time ends first.
    ``where`` is the source's "account: host:port" (its errors start with it); ``context`` says
    what was being done ("folder 'INBOX'").
    """
    label = f"{where}: {context}" if context else where
    last: Exception = cause
    for number, delay in enumerate(backoff_delays(attempts, first_delay), start=1):
        remaining = clock.remaining()
        if remaining is not None and remaining <= delay:
            raise RunTimeLimit
        log.warning(
            "%s: connection lost (%s); reconnecting in %gs (attempt %d of %d)",
            label,
            _reason(last, where),
            delay,
            number,
            attempts,
        )
        sleep(delay)
        try:
            connect()
        except ConnectError as exc:
            last = exc
            continue
        log.warning("%s: reconnected (attempt %d of %d); syncing again from the last commit", label, number, attempts)
        return
    if attempts <= 0:
        raise ConnectError(
            f"{label}: the connection was lost ({_reason(cause, where)}) and reconnecting is off "
            "(reconnect_attempts = 0); the next run continues from the last committed batch"
        )
    raise ConnectError(
        f"{label}: the connection was lost ({_reason(cause, where)}) and {attempts} reconnect attempt(s) failed "
        f"(last: {_reason(last, where)}); the next run continues from the last committed batch"
    )


def _reason(exc: Exception, where: str) -> str:
    """The error's words without the "account: host:port: " prefix the caller already gives."""
    text = str(exc)
    prefix = f"{where}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def is_dropped(exc: Exception) -> bool:
    return isinstance(exc, DROPPED)


def record_quietly(catalog: Catalog, run_id: int | None, folder: str | None, message: str) -> None:
    """Record an error on the run unless the catalog cannot take it (disk full): then the log has it.

    For the lines written after the run already failed: a second failure must not hide the first.
    """
    if run_id is None:
        return
    try:
        catalog.record_error(run_id, folder, message)
    except ArchiverError as exc:
        log.error("could not record %r on run %s: %s", message, run_id, exc)


__all__ = [
    "DEFAULT_RECONNECT_ATTEMPTS",
    "FATAL_ERRORS",
    "MAX_DROPS_WITHOUT_PROGRESS",
    "PoisonedMessages",
    "RunClock",
    "RunTimeLimit",
    "backoff_delays",
    "is_dropped",
    "oversized",
    "reconnect",
    "record_quietly",
    "too_big_message",
]
