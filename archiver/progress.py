"""Progress of long runs: the events a run reports, a rich bar on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import sys

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
