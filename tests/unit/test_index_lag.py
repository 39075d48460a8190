"""How far the search index lags, as status, the web UI and /metrics tell it, read without Whoosh.

On a real archive (blob store, catalog, index): mail archived but not yet indexed is counted, with its age;
the process indexing it (``index/activity.json``) is named with its progress, a failed or killed update is
said, and none of it needs the index to be opened.
"""

from __future__ import annotations

import os
import subprocess
import sys

from archiver import index
from archiver.daemon.metrics import render_metrics
from archiver.index.lag import WORKER, ActivityRecorder, index_lag
from tests.fixtures.webdata import add_messages, message


def _archive(app):
    return app.extensions["archiver_archive"]


def _metric(app, name: str) -> float:
    text = render_metrics(app.extensions["archiver_config"], _archive(app).catalog).decode()
    (line,) = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


def test_an_indexed_archive_is_up_to_date_everywhere(app, root) -> None:
    lag = index_lag(_archive(app).root, _archive(app).catalog)
    assert not lag.behind and lag.summary() == "up to date" and lag.as_dict()["messages_behind"] == 0
    assert "Search index: up to date." in root.get("/runs").get_data(as_text=True)
    assert "Results may be incomplete" not in root.get("/search?q=zebra7").get_data(as_text=True)
    assert _metric(app, "archiver_index_lag_messages") == 0 and _metric(app, "archiver_index_lag_seconds") == 0


def test_mail_not_yet_indexed_is_counted_and_told_to_whom_may_know(app, root, bob) -> None:
    archive = _archive(app)
    add_messages(archive, "beta", "INBOX", [message(f"late {n}", f"body walrus{n}", n=900 + n) for n in range(3)])
    lag = index_lag(archive.root, archive.catalog)
    assert lag.messages == 3 and lag.changes == 0 and lag.oldest_seconds is not None and lag.oldest_seconds >= 0
    assert lag.summary().startswith("3 message(s) not searchable yet, the oldest archived ")
    assert "the next backup indexes them" in lag.summary()
    assert "3 message(s) not searchable yet" in root.get("/runs").get_data(as_text=True)
    assert "Results may be incomplete" in root.get("/search?q=zebra7").get_data(as_text=True)
    # bob sees alpha only: told that the index catches up, not how much mail (other accounts') waits.
    page = bob.get("/runs").get_data(as_text=True)
    assert "catching up" in page and "3 message(s)" not in page
    assert _metric(app, "archiver_index_lag_messages") == 3

    # A worker at it: named, with its progress (this process stands in for it: it is alive).
    worker = ActivityRecorder(archive.root, WORKER)
    worker.progress(1, 3)
    lag = index_lag(archive.root, archive.catalog)
    assert lag.updating and "being indexed now (background worker, pid " in lag.summary()
    assert lag.summary().endswith(": 1 of 3 indexed")
    assert lag.as_dict() | {"oldest_unindexed_seconds": None} == {
        "messages_behind": 3, "changes_behind": 0, "oldest_unindexed_seconds": None, "updating": True,
        "worker_running": True, "pid": lag.activity.pid, "done": 1, "total": 3, "last_error": None,
    }  # fmt: skip
    assert _metric(app, "archiver_index_worker_running") == 1
    worker.finish("search index not updated (the next run catches up): disk full")
    lag = index_lag(archive.root, archive.catalog)
    assert not lag.updating and lag.failed and "the last index update failed: search index not updated" in lag.summary()
    assert _metric(app, "archiver_index_update_failed") == 1

    index.update_index(archive)  # caught up: the old failure is history
    lag = index_lag(archive.root, archive.catalog)
    assert not lag.behind and lag.failed is None
    assert _metric(app, "archiver_index_update_failed") == 0 and _metric(app, "archiver_index_lag_messages") == 0


def test_an_update_killed_half_way_is_said_to_have_stopped(app) -> None:
    archive = _archive(app)
    add_messages(archive, "alpha", "INBOX", [message("after", "body numbat", n=990)])
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    recorder = ActivityRecorder(archive.root, WORKER)
    recorder.progress(0, 1)
    path = archive.root / "index" / "activity.json"
    path.write_text(path.read_text().replace(f'"pid": {os.getpid()}', f'"pid": {int(gone.stdout)}'))
    lag = index_lag(archive.root, archive.catalog)
    assert lag.activity.interrupted and not lag.updating
    assert f"the index update (pid {int(gone.stdout)}) stopped before it finished" in lag.summary()


def test_folder_and_flag_changes_of_indexed_mail_are_counted_apart(app) -> None:
    archive = _archive(app)
    catalog = archive.catalog
    (placement,) = catalog.db.execute("SELECT id FROM placements ORDER BY id LIMIT 1").fetchall()
    with catalog.transaction():
        catalog.db.execute("UPDATE placements SET flags = '\\Flagged' WHERE id = ?", (placement[0],))
    lag = index_lag(archive.root, catalog)
    assert lag.messages == 0 and lag.changes == 1
    assert "1 message(s) with folder or flag changes not applied yet" in lag.summary()
    assert index_lag(archive.root, catalog, quick=True).changes == 1  # no new message waits: counted anyway
    add_messages(archive, "alpha", "INBOX", [message("newer", "body okapi", n=991)])
    quick = index_lag(archive.root, catalog, quick=True)  # the search page's notice: the new mail is the news
    assert quick.messages == 1 and quick.changes == 0 and quick.behind
    assert index_lag(archive.root, catalog).changes == 1


def test_a_rebuilt_index_is_up_to_date(app) -> None:
    archive = _archive(app)
    add_messages(archive, "alpha", "INBOX", [message("rebuilt", "body dugong", n=995)])
    assert index_lag(archive.root, archive.catalog).messages == 1
    index.reindex(archive)
    assert not index_lag(archive.root, archive.catalog).behind
