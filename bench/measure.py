"""What the benchmarks share: measuring child processes (wall time, peak memory of the whole
process tree) and the archiver config pointing at a benchmark's private Dovecot.

Shared by the bench scripts (run as ``python bench/NAME.py``, so this directory is on sys.path).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from archiver.memory import proc_kb, process_tree


def run_child(
    command: list[str], env: dict | None = None, quiet: bool = False, peaks: dict | None = None
) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run a command; return wall seconds, its peak RSS in KB, and the result.

    The peak covers the whole process tree (the search index may use worker processes): the
    larger of the command's own VmHWM and the highest sum of VmRSS over the tree, sampled every
    20 ms from ``/proc``.  ``ru_maxrss`` from ``wait4`` would instead count this parent's
    memory at fork time and miss the workers.

    The RSS sum counts a page shared by several processes of the tree (a forked worker's
    copy-on-write pages, shared libraries) once per process, so it overstates a tree's memory.
    Given a ``peaks`` dict, it is filled with ``rss_kb`` (the figure returned) and ``pss_kb``:
    the highest sum over the tree of PSS (``/proc/PID/smaps_rollup``: each shared page divided
    among the processes sharing it), the honest figure for what the tree costs the machine.
    """
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        peak_kb = peak_pss_kb = 0
        while process.poll() is None:
            tree = process_tree(process.pid)
            peak_kb = max(peak_kb, proc_kb(process.pid, "VmHWM"), sum(proc_kb(p, "VmRSS") for p in tree))
            if peaks is not None:
                peak_pss_kb = max(peak_pss_kb, sum(proc_kb(p, "Pss", "smaps_rollup") for p in tree))
            time.sleep(0.02)
        if peaks is not None:
            peaks.update(rss_kb=peak_kb, pss_kb=peak_pss_kb)
        elapsed = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if result.returncode != 0 and not quiet:
        print(f"  ! {command[0]} exited {result.returncode}: {stderr.strip()[-500:]}", file=sys.stderr)
    return elapsed, peak_kb, result


def tree_bytes(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_config(
    work: Path, protocol: str, port: int, user: str, password: str, extra: str = "", archive_extra: str = ""
) -> Path:
    """``work/archiver.toml``: an archive in ``work/archive`` and one plain-text account "bench" on loopback.

    ``archive_extra``: more ``[archive]`` keys (``store = "s3://…"``); ``extra``: more keys of the account.
    """
    path = work / "archiver.toml"
    path.write_text(f"""[archive]
path = "{work / "archive"}"
{archive_extra}

[[accounts]]
name = "bench"
protocol = "{protocol}"
host = "127.0.0.1"
port = {port}
security = "none"
username = "{user}"
password = "{password}"
{extra}""")
    path.chmod(0o600)
    return path
