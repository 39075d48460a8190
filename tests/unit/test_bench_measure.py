"""What the benchmarks report about a command: its wall time, and the memory of every process it starts,
including one it leaves running in the background (an index worker) after it returns."""

from __future__ import annotations

import sys
import textwrap

from tests.fixtures.benches import bench_module

measure = bench_module("measure")
index_cost = bench_module("index_cost")

#: A command that starts a detached process (its own session, re-parented to init once the command exits)
#: holding 80 MB for 1.5 s, and returns at once: what a backup leaving its index update to a worker does.
LEAVES_A_WORKER = [
    sys.executable,
    "-c",
    textwrap.dedent("""
        import subprocess, sys
        worker = "import time; held = b'x' * (80 << 20); time.sleep(1.5)"
        subprocess.Popen([sys.executable, "-c", worker], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    """),
]


def test_a_process_left_running_counts_in_the_time_until_settled_and_in_the_peak() -> None:
    peaks: dict = {}
    returned, peak_kb, result = measure.run_child(LEAVES_A_WORKER, peaks=peaks, settle=True)
    assert result.returncode == 0
    assert returned < 1.2  # the command itself returned at once
    assert peaks["settled_s"] >= 1.5  # the worker's end was waited for
    assert peak_kb >= 80 * 1024  # and its memory counted


def test_without_settle_the_call_returns_with_the_command() -> None:
    peaks: dict = {}
    _, peak_kb, _ = measure.run_child(LEAVES_A_WORKER, peaks=peaks)
    assert peaks["settled_s"] < 1.2
    assert peak_kb < 80 * 1024


def test_importtime_total_sums_the_self_column() -> None:
    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       250 |        250 |   _io\n"
        "import time:      1500 |       1750 | archiver.cli\n"
        "a warning line\n"
    )
    assert index_cost.importtime_total(stderr) == (1.75, 2)


def test_the_table_compares_each_figure_with_its_peer_and_flags_the_memory_budget() -> None:
    medians = {
        "full_default_s": 80.0, "full_default_settled_s": 80.0, "full_default_peak_MB": 314.0,
        "full_mbsync_s": 8.0, "full_mbsync_peak_MB": 29.0,
        "reindex_s": 37.0, "reindex_peak_MB": 860.0, "build_mu_s": 20.0, "build_mu_peak_MB": 90.0,
        "build_notmuch_s": 37.4, "build_notmuch_peak_MB": 60.0,
    }  # fmt: skip
    lines = index_cost.table(medians, {"import_ms": 270.4, "import_modules": 300}, budget=150)
    assert (
        "| full backup as a user runs it: returned (durable) | 80.00 s | 314 (over 150) | mbsync 8.00 s | 29 | 10.00× |"
        in lines
    )
    assert "| `reindex` | 37.00 s | 860 | mu index 20.00 s; notmuch new 37.40 s | 90; 60 | 1.85× |" in lines
    assert lines[-1].startswith("| imports of `archiver backup` (`python -X importtime`, 300 modules) | 270 ms |")
    assert not any("--no-index" in line for line in lines)  # a figure not measured is left out, not shown as 0
