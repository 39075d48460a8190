"""A worker of the parallel index build that dies hard (OOM killer, segfault) ends the build with one line.

The parent waits on the workers' queues; before, it waited an hour for a segment a dead worker
would never send (a full job queue: for ever).  The worker here dies by ``os._exit`` from inside
its batch, as a kill would leave it: no exception, no result posted.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from archiver import index
from archiver.devtools.sample_mail import generate_mailbox
from archiver.index import parallel
from archiver.index import writer as index_writer
from archiver.index.writer import SearchIndexError
from tests.fixtures.archives import OpenArchive, add_messages

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="the rebuild forks its workers"
)


def _die(*_args: object, **_kwargs: object) -> None:
    os._exit(9)


def test_a_worker_that_dies_ends_the_rebuild_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, open_archive: OpenArchive
) -> None:
    samples = [(s.folder, s.raw, tuple(s.flags), s.internaldate) for s in generate_mailbox(300, seed=11)]
    with open_archive(tmp_path / "archive") as archive:
        add_messages(archive, "work", samples)
        monkeypatch.setattr(index_writer, "PARALLEL_FROM", 10)  # 300 messages count as a large backlog
        monkeypatch.setattr(parallel, "write_batch", _die)  # the forked workers inherit it
        started = time.monotonic()
        with pytest.raises(SearchIndexError) as info:
            index.reindex(archive, procs=2)
        assert time.monotonic() - started < 30
    assert "indexing worker" in str(info.value)
