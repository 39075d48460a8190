"""Progress of long runs: the events a run reports, a rich bar on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger("archiver.progress")


class Progress:
    """Receives the progress events of a backup, a restore or an export; this null object ignores them.

    The CLI draws a bar, the web UI a job page; a run depends on the events, not on how they are shown.
    """

    def folder(self, name: str, messages: int, size: int) -> None:
        """A folder starts: ``messages`` to fetch, ``size`` bytes announced for them."""

    def advance(self, messages: int, size: int) -> None:
        """``messages`` more (``size`` bytes) are stored and recorded."""


class LogProgress(Progress):
    """Plain lines for journals and pipes: one per folder with work to do."""

    def folder(self, name: str, messages: int, size: int) -> None:
        log.info("fetching %d message(s), %d bytes, from %s", messages, size, name)


class BarProgress(Progress):
    """A rich progress bar per folder, on stderr."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )

        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        self._task = None

    def __enter__(self) -> BarProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def folder(self, name: str, messages: int, size: int) -> None:
        if self._task is not None:
            self._bar.remove_task(self._task)
        self._task = self._bar.add_task(f"{name[:40]} ({messages} msgs)", total=size)

    def advance(self, messages: int, size: int) -> None:
        if self._task is not None:
            self._bar.advance(self._task, size)


class _NullContext:
    def __enter__(self) -> _NullContext:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def progress_for_terminal() -> tuple[Progress, object]:
    """The progress sink and a context manager that drives it."""
    if sys.stderr.isatty():
        bar = BarProgress()
        return bar, bar
    return LogProgress(), _NullContext()


class IndexProgress:
    """Receives an index update's ``(done, total)`` reports (a ``ProgressFn``); this null object ignores them.

    Also the context manager that clears what it drew.  The first report comes after the first batch is
    written, so a run with nothing to index (most runs) shows nothing at all.
    """

    def __call__(self, done: int, total: int) -> None:
        """``done`` of the ``total`` messages this update indexes are written."""

    def __enter__(self) -> IndexProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class IndexLog(IndexProgress):
    """Lines for journals and pipes: when indexing starts, then at each tenth of the way (a long update
    of a first backup is not silent for minutes, nor a line per batch)."""

    def __init__(self) -> None:
        self._tenths = -1

    def __call__(self, done: int, total: int) -> None:
        tenths = 10 * done // total if total > 0 else 10
        if self._tenths < 0:
            log.info("indexing %d message(s) for search", total)
        if tenths > max(self._tenths, 0):
            log.info("indexed %d of %d message(s)", done, total)
        self._tenths = max(self._tenths, tenths)


class IndexBar(IndexProgress):
    """A rich bar "indexing N message(s)" on stderr (or ``console``), started by the first report, then cleared."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console
        self._bar = None
        self._task = None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            self._bar = RichProgress(*columns, transient=True, **({"console": self._console} if self._console else {}))
            self._bar.start()
            self._task = self._bar.add_task(f"indexing {total} message(s)", total=total)
        self._bar.update(self._task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def index_progress_for_terminal(quiet: bool = False) -> IndexProgress:
    """How an index update shows itself: a bar on a terminal, INFO lines otherwise, nothing when ``quiet``
    (``--json``: the output is for a program)."""
    if quiet:
        return IndexProgress()
    return IndexBar() if sys.stderr.isatty() else IndexLog()
