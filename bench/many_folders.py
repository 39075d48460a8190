"""First sync of an account with many folders against a real, private Dovecot: is the rate steady?

For each folder count N, a fresh Dovecot user gets N folders (one small, distinct message each),
written straight into its maildir (``DovecotSandbox.make_folders_on_disk``: N CREATE + APPEND round
trips would take longer than the sync).  One in-process backup run (no search index) is timed, and
for every folder the moment it started is recorded, so the figures show whether the rate holds:

* folders/s over the whole run, and in the first and the last tenth of the folders
  (``last_over_first``: 1.0 is a steady rate; a quadratic catalog made it fall with N);
* the archiver's CPU ms per folder in the first and the last tenth (its own work, apart from the
  server's), Dovecot's CPU seconds for the run (its whole process tree), and the catalog's SQLite
  VM steps per folder (the figure the tests assert on);
* the ratio of each N's per-folder time to the smallest N's, measured in the same run (the baseline).

    python bench/many_folders.py                          # 3,000 and 30,000 folders
    python bench/many_folders.py --folders 100000         # the issue's size
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import measure

from archiver.archive import Archive
from archiver.backup import Progress, run_backup
from archiver.config import config_from_toml_text
from archiver.devtools.sandbox import DovecotSandbox
from archiver.memory import process_tree

PASSWORD = "bench-password"
STEP = 1000  # SQLite VM instructions per progress callback


class FolderClock(Progress):
    """Records when each folder's download starts, wall and CPU (every folder here has one new message)."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.cpu: list[float] = []

    def folder(self, name: str, messages: int, size: int) -> None:
        self.starts.append(time.perf_counter())
        self.cpu.append(time.process_time())


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process tree: its living processes, and the children its root has reaped.

    Dovecot's master forks every service (imap, auth …) itself, so an imap process that served the
    run and exited is in the master's cutime/cstime.
    """
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        if member == pid:
            total += int(fields[13]) + int(fields[14])  # cutime, cstime: reaped children
    return total / os.sysconf("SC_CLK_TCK")


def message(folder: str) -> bytes:
    return (
        f"Message-ID: <{folder}@bench.example>\r\nFrom: a@example.net\r\nSubject: {folder}\r\n\r\n"
        f"The one message of {folder}.\r\n"
    ).encode()


def rate(starts: list[float]) -> float:
    return (len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 else 0.0


def bench_one(sandbox: DovecotSandbox, work: Path, count: int) -> dict:
    user = f"bench{count}"
    sandbox.add_user(user, PASSWORD)
    sandbox.connect(user).logout()  # the first login creates the maildir
    started = time.perf_counter()
    sandbox.make_folders_on_disk(user, (f"box{n:06d}" for n in range(count)), message)
    made_s = time.perf_counter() - started
    work.mkdir()
    path = measure.write_config(work, "imap", sandbox.imap_port, user, PASSWORD, extra="timeout = 600\n")
    config = config_from_toml_text(path.read_text(), path)
    clock = FolderClock()
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += STEP
        return 0

    with Archive(config.archive) as archive:
        archive.catalog.db.set_progress_handler(tick, STEP)
        server_cpu = tree_cpu_seconds(sandbox.pid)
        cpu = time.process_time()
        started = time.perf_counter()
        report = run_backup(config, config.accounts[0], progress=clock, archive=archive, index=False)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        server_cpu = tree_cpu_seconds(sandbox.pid) - server_cpu
    if not report.ok or len(clock.starts) != count:
        raise SystemExit(f"{count} folders: backup {report.status}: {report.problems[:3]}")
    tenth = max(2, count // 10)
    first, last = rate(clock.starts[:tenth]), rate(clock.starts[-tenth:])
    cpu_first = 1000 * (clock.cpu[tenth - 1] - clock.cpu[0]) / (tenth - 1)
    cpu_last = 1000 * (clock.cpu[-1] - clock.cpu[-tenth]) / (tenth - 1)
    return {
        "folders": count,
        "make_on_disk_s": round(made_s, 1),
        "sync_s": round(seconds, 1),
        "sync_cpu_s": round(cpu, 1),
        "archiver_cpu_ms_per_folder_first_tenth": round(cpu_first, 2),
        "archiver_cpu_ms_per_folder_last_tenth": round(cpu_last, 2),
        "dovecot_cpu_s": round(server_cpu, 1),
        "folders_per_s": round(count / seconds, 1),
        "first_tenth_folders_per_s": round(first, 1),
        "last_tenth_folders_per_s": round(last, 1),
        "last_over_first": round(last / first, 2) if first else None,
        "ms_per_folder": round(1000 * seconds / count, 3),
        "catalog_vm_steps_per_folder": round(steps / count),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folders", type=int, action="append", help="folder count (repeatable)")
    args = parser.parse_args()
    counts = sorted(args.folders or [3000, 30000])
    results = []
    with tempfile.TemporaryDirectory(prefix="archiver-bench-") as tmp, DovecotSandbox(Path(tmp) / "dovecot") as box:
        for count in counts:
            results.append(bench_one(box, Path(tmp) / f"work{count}", count))
            print(json.dumps(results[-1]), flush=True)
    base = results[0]["ms_per_folder"]
    for result in results:
        result["ms_per_folder_over_smallest"] = round(result["ms_per_folder"] / base, 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
