"""What the benchmarks share: measuring child processes (wall time, peak memory of the whole
process tree) and the archiver config pointing at a benchmark's private Dovecot.

Shared by the bench scripts (run as ``python bench/NAME.py``, so this directory is on sys.path).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from archiver.memory import proc_kb, process_tree

#: The environment variable that marks every process a measured command starts, even one it leaves
#: running detached (a background index worker re-parented to init is no longer in its process tree).
RUN_TAG = "ARCHIVER_BENCH_RUN"
#: How often the whole of /proc is scanned for tagged processes (the tree itself is sampled more often).
_TAG_SCAN_SECONDS = 0.25
#: How often the tree's PSS is read (RSS is read at every sample).
_PSS_SECONDS = 0.1
#: The longest a command's detached processes are waited for after it returned.
SETTLE_TIMEOUT = 3 * 3600


def tagged_processes(tag: str) -> set[int]:
    """Pids of the processes whose environment holds ``RUN_TAG=tag``."""
    marker = f"{RUN_TAG}={tag}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.add(int(entry.name))
            except OSError:  # ended meanwhile, or not ours to read
                pass
    return found


def run_child(
    command: list[str],
    env: dict | None = None,
    quiet: bool = False,
    peaks: dict | None = None,
    settle: bool = False,
) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run a command; return the wall seconds until it exits, its peak RSS in KB, and the result.

    The peak covers the whole process tree (the search index may use worker processes): the
    larger of the command's own VmHWM and the highest sum of VmRSS over the tree, sampled every
    from ``/proc`` every millisecond at first, then every 20 ms (a search process lives a few
    milliseconds); the wall time ends when the command exits, not at the next sample.
    ``ru_maxrss`` from ``wait4`` would instead count this parent's memory at fork time and miss
    the workers.

    The RSS sum counts a page shared by several processes of the tree (a forked worker's
    copy-on-write pages, shared libraries) once per process, so it overstates a tree's memory.
    Given a ``peaks`` dict, it is filled with ``rss_kb`` (the figure returned) and ``pss_kb``:
    the highest sum over the tree of PSS (``/proc/PID/smaps_rollup``: each shared page divided
    among the processes sharing it), the honest figure for what the tree costs the machine.

    With ``settle``, processes the command leaves running (found by the ``RUN_TAG`` its
    environment passes on, even once detached) count in the tree, and the call returns only when
    the last of them has ended: ``peaks["settled_s"]`` is then the wall time from the start until
    then (the command's own exit when it leaves nothing behind).
    """
    started = time.perf_counter()
    tag = uuid.uuid4().hex
    env = dict(os.environ if env is None else env, **{RUN_TAG: tag})
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        peak_kb = peak_pss_kb = 0
        strays: set[int] = set()
        scanned = pss_due = 0.0
        elapsed = None
        interval = 0.001
        while True:
            if elapsed is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=interval)  # returns the moment it exits
                if process.returncode is not None:
                    elapsed = time.perf_counter() - started
                    scanned = 0.0  # look at once for what it left running
            if settle and time.perf_counter() - scanned >= _TAG_SCAN_SECONDS:
                strays, scanned = tagged_processes(tag), time.perf_counter()
            strays = {pid for pid in strays if os.path.exists(f"/proc/{pid}")}
            tree = set(strays) if elapsed is not None else set(process_tree(process.pid)) | strays
            if elapsed is not None and not (settle and tree):
                break
            if elapsed is not None and time.perf_counter() - started > elapsed + SETTLE_TIMEOUT:
                print(f"  ! {command[0]} left processes running: {sorted(tree)}", file=sys.stderr)
                break
            own = proc_kb(process.pid, "VmHWM") if elapsed is None else 0
            peak_kb = max(peak_kb, own, sum(proc_kb(p, "VmRSS") for p in tree))
            if peaks is not None and time.perf_counter() >= pss_due:  # smaps_rollup walks every mapping: costly
                peak_pss_kb = max(peak_pss_kb, sum(proc_kb(p, "Pss", "smaps_rollup") for p in tree))
                pss_due = time.perf_counter() + _PSS_SECONDS
            if elapsed is not None:
                time.sleep(interval)
            interval = min(0.02, interval * 1.5)
        if peaks is not None:
            peaks.update(rss_kb=peak_kb, pss_kb=peak_pss_kb, settled_s=time.perf_counter() - started)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if result.returncode != 0 and not quiet:
        print(f"  ! {command[0]} exited {result.returncode}: {stderr.strip()[-500:]}", file=sys.stderr)
    return elapsed, peak_kb, result


def follow_detached(pid: int | None, peaks: dict | None = None) -> float:
    """Wait for a process this bench did not start (the index worker ``archiver backup`` leaves running);
    seconds waited.  Given ``peaks``, ``rss_kb`` and ``pss_kb`` are raised to its tree's peaks meanwhile."""
    started = time.perf_counter()
    if pid is None:
        return 0.0
    while Path(f"/proc/{pid}").exists() and _state(pid) not in ("Z", "X"):
        if peaks is not None:
            tree = process_tree(pid)
            rss = max(proc_kb(pid, "VmHWM"), sum(proc_kb(p, "VmRSS") for p in tree))
            pss = sum(proc_kb(p, "Pss", "smaps_rollup") for p in tree)
            peaks["rss_kb"] = max(peaks.get("rss_kb", 0), rss)
            peaks["pss_kb"] = max(peaks.get("pss_kb", 0), pss)
        time.sleep(0.02)
    return time.perf_counter() - started


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return "X"


def tree_bytes(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_config(
    work: Path, protocol: str, port: int, user: str, password: str, extra: str = "", archive_extra: str = ""
) -> Path:
    """``work/archiver.toml``: an archive in ``work/archive`` and one plain-text account "bench" on loopback.

    ``archive_extra``: more ``[archive]`` keys (``store = "s3://…"``, ``encryption = true``); ``extra``: more keys
    of the account.
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
