"""Measured: the index update of each hostile message stays within ``[index] memory_mb`` (+15 %).

Each message gets an archive of its own (with a few ordinary messages around it) and a child process
runs the index update a backup runs (``update_index`` with the budget) while this test sums VmRSS over
the child and any workers every 10 ms from /proc, as ``test_index_memory_rss`` does.

Sizes: the header attacks are built at 10 MB (a Subject folded over 140,000 lines) and 50 MB (one
header line); before the caps they peaked at about 30 and 12 times their size, so 50 MB is enough to
prove the cap and keeps the test's own memory and time reasonable (a 200 MB line only adds its own
200 MB of raw bytes, which any reader of the message must hold).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archiver.memory import proc_kb, process_tree
from archiver.sample_mail import generate_mailbox
from tests.hostile_mail import huge_header_line, huge_subject, pdf_bomb, with_pdf
from tests.unit.test_index_support import add_messages, open_archive

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc"),
]

BUDGET_MB = 150  # the default [index] memory_mb
SLACK = 1.15

CHILD = """
import json, sys
from pathlib import Path
from archiver.archive import Archive
from archiver.config import ArchiveConfig
from archiver.index import update_index
from archiver.memory import tune_allocator

tune_allocator()  # as the CLI does
with Archive(ArchiveConfig(path=Path(sys.argv[1]))) as archive:
    report = update_index(archive, memory_mb=int(sys.argv[2]))
    problems = [row[0] for row in archive.catalog.db.execute("SELECT problems FROM index_problems")]
    print(json.dumps({"indexed": report.indexed, "problems": problems}))
"""

HOSTILE = {
    "subject-10mb": lambda: huge_subject(10, "hostilesubject"),
    "subject-10mb-folded": lambda: huge_subject(10, "hostilefolded", folded=True),
    "header-line-50mb": lambda: huge_header_line(50, "hostileline"),
    "pdf-bomb-2gb": lambda: with_pdf("hostilepdf", pdf_bomb(2048)),
}


def _measure(archive: Path, budget_mb: int) -> tuple[dict, float]:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(archive), str(budget_mb)], stdout=subprocess.PIPE)
    peak = 0
    while child.poll() is None:
        peak = max(peak, sum(proc_kb(pid, "VmRSS") for pid in process_tree(child.pid)))
        time.sleep(0.01)
    assert child.stdout is not None
    output = child.stdout.read()
    assert child.returncode == 0, output
    return json.loads(output), peak / 1024


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_message_is_indexed_within_the_budget(tmp_path: Path, name: str) -> None:
    raw = HOSTILE[name]()
    items = [(s.folder, s.raw, tuple(s.flags), s.internaldate) for s in generate_mailbox(20, seed=3)]
    items.append(("INBOX", raw, (), None))
    del raw
    with open_archive(tmp_path / "archive") as archive:
        add_messages(archive, "work", items)
        unique = archive.catalog.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    del items
    result, peak_mb = _measure(tmp_path / "archive", BUDGET_MB)
    print(f"{name}: peak {peak_mb:.0f} MB, problems {result['problems']}")
    assert result["indexed"] == unique
    assert peak_mb <= BUDGET_MB * SLACK, f"{name}: peak {peak_mb:.0f} MB over {BUDGET_MB} MB + 15 %"
