"""Measured: the whole process tree of an index update stays within ``memory_mb``.

A child process indexes an archive of generated mail with a few 8 MB messages
(the expensive ones to parse) under a budget, while this test sums VmRSS over
the child and its workers every 10 ms from /proc.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from archiver.devtools.sample_mail import generate_mailbox
from archiver.memory import proc_kb, process_tree
from tests.fixtures.archives import add_messages, archive_at

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc"),
]

CHILD = """
import json, sys
from pathlib import Path
from archiver.archive import Archive
from archiver.config import ArchiveConfig
from archiver.index import update_index, writer
from archiver.memory import tune_allocator

tune_allocator()  # as the CLI does
writer.PARALLEL_FROM = writer.COMMIT_DOCS = 100  # this small archive takes the paths of a big backlog
with Archive(ArchiveConfig(path=Path(sys.argv[1]))) as archive:
    report = update_index(archive, procs=2, memory_mb=int(sys.argv[2]))
    print(json.dumps({"indexed": report.indexed, "procs": report.plan.procs, "pool_mb": report.plan.pool_mb,
                      "estimate_mb": report.plan.estimate_mb}))
"""


def _big(number: int) -> bytes:
    message = EmailMessage()
    message["From"] = "alice@example.org"
    message["To"] = "bob@example.org"
    message["Subject"] = f"scans {number}"
    message["Message-ID"] = f"<big{number}@example.org>"
    message.set_content("the scans you asked for")
    words = " ".join(f"word{i % 5000}" for i in range(600_000)).encode()  # a 6 MB text attachment
    message.add_attachment(words, maintype="text", subtype="plain", filename=f"scan{number}.txt")
    message.add_attachment(bytes(range(256)) * 8192, maintype="application", subtype="pdf", filename="s.pdf")
    return message.as_bytes()


@pytest.fixture(scope="module")
def archive_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """An archive of 400 generated messages and four 8 MB ones; its path and its number of unique messages."""
    root = tmp_path_factory.mktemp("memory") / "archive"
    items = [(s.folder, s.raw, tuple(s.flags), s.internaldate) for s in generate_mailbox(400, seed=11)]
    items += [("INBOX", _big(n), (), None) for n in range(4)]
    with archive_at(root) as archive:
        add_messages(archive, "work", items)
        unique = archive.catalog.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    yield root, unique


def _index_measured(archive: Path, budget_mb: int) -> tuple[dict, float]:
    """Run the update in a child; its plan and the peak of the tree's summed VmRSS in MB."""
    for path in (archive / "index").glob("*"):  # start from no index: every message is pending
        if path.is_dir():
            for sub in sorted(path.rglob("*"), reverse=True):
                sub.unlink() if sub.is_file() else sub.rmdir()
            path.rmdir()
        else:
            path.unlink()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(archive), str(budget_mb)], stdout=subprocess.PIPE)
    peak = 0
    while child.poll() is None:
        peak = max(peak, sum(proc_kb(pid, "VmRSS") for pid in process_tree(child.pid)))
        time.sleep(0.01)
    assert child.returncode == 0
    assert child.stdout is not None
    return json.loads(child.stdout.read()), peak / 1024


@pytest.mark.parametrize(("budget_mb", "procs"), [(140, 0), (200, 0), (450, 2)])
def test_the_process_tree_stays_within_the_budget(archive_path: tuple[Path, int], budget_mb: int, procs: int) -> None:
    root, unique = archive_path
    plan, peak_mb = _index_measured(root, budget_mb)
    assert plan["indexed"] == unique and plan["procs"] == procs  # in this process, or two spawned workers
    assert peak_mb <= budget_mb, f"peak {peak_mb:.0f} MB over a {budget_mb} MB budget ({plan})"
