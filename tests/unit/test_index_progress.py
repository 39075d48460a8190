"""The index update at the end of a backup reports its progress: a bar on a terminal, INFO lines otherwise."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from archiver.backup import update_search_index
from archiver.progress import IndexBar, IndexLog
from tests.fixtures.archives import OpenArchive
from tests.fixtures.webdata import add_messages, message


@pytest.fixture
def config(config_file: Callable[..., Path]) -> Path:
    return config_file('[[accounts]]\nname = "a"\nprotocol = "local"\n')


def test_the_update_drives_the_callback_until_done_reaches_total(config: Path, open_archive: OpenArchive) -> None:
    calls: list[tuple[int, int]] = []
    with open_archive(config) as archive:
        run = add_messages(archive, "a", "INBOX", [message(f"note {n}", n=n) for n in range(30)])
        outcome = update_search_index(archive, run, progress=lambda done, total: calls.append((done, total)))
        assert outcome.error is None and outcome.indexed == 30
        assert calls[0] == (0, 30)  # a bar at once, before the first message is indexed
        assert calls[-1] == (30, 30) and {total for _, total in calls} == {30}
        assert [done for done, _ in calls] == sorted(done for done, _ in calls)
        calls.clear()
        update_search_index(archive, run, progress=lambda done, total: calls.append((done, total)))
        assert calls == []  # nothing new: nothing shown


def test_off_a_terminal_the_update_logs_its_start_and_end_at_info(
    config: Path, open_archive: OpenArchive, caplog: pytest.LogCaptureFixture
) -> None:
    with open_archive(config) as archive, caplog.at_level(logging.INFO, logger="archiver.progress"):
        run = add_messages(archive, "a", "INBOX", [message(f"note {n}", n=n) for n in range(12)])
        with IndexLog() as indexing:
            update_search_index(archive, run, progress=indexing)
    lines = [r.getMessage() for r in caplog.records if r.name == "archiver.progress"]
    assert lines[0] == "indexing 12 message(s) for search" and lines[-1] == "indexed 12 of 12 message(s)"
    assert len(lines) <= 11


def test_a_long_update_logs_a_line_per_tenth_not_per_batch(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="archiver.progress"), IndexLog() as indexing:
        for done in range(0, 10_001, 100):
            indexing(done, 10_000)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "indexing 10000 message(s) for search" and len(lines) == 11
    assert lines[1] == "indexed 1000 of 10000 message(s)" and lines[-1] == "indexed 10000 of 10000 message(s)"


def test_on_a_terminal_the_update_draws_a_bar(config: Path, open_archive: OpenArchive) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    with open_archive(config) as archive:
        run = add_messages(archive, "a", "INBOX", [message(f"note {n}", n=n) for n in range(7)])
        with IndexBar(console) as indexing:
            update_search_index(archive, run, progress=indexing)
    assert "indexing 7 message(s)" in screen.getvalue() and "7/7" in screen.getvalue()
