"""POP3 backup throughput against a real, private Dovecot, with raw poplib baselines from the same run.

Fills the INBOX of a fresh Dovecot with a seeded, realistic mailbox, then times
on the same data:

(a) the floor: a plain ``poplib`` loop, ``RETR`` of every message, discarded (then RSET, QUIT);
(b) the same loop with ``TOP n 2147483647``, the command the archiver uses (it never marks \\Seen);
(c) ``archiver backup`` of a ``protocol = "pop3"`` account (a subprocess, so its peak RSS is its own),
    timed whole (process start and search indexing included) and as the run's own span in the
    catalog (``started_at`` → ``ended_at``: list, fetch, hash, compress, fsync, commit; the index
    update comes after),

then a no-change re-run of (c).  Everything talks plain POP3 on loopback so the
comparison is about the work, not TLS.  Prints one JSON line per size with
messages/s, MB/s, the ratios c/a and c/b, and peak RSS.

    python bench/pop3_throughput.py                  # 1,000 messages
    python bench/pop3_throughput.py --messages 5000
"""

from __future__ import annotations

import argparse
import json
import poplib
import sqlite3
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import measure
from measure import run_child, tree_bytes

from archiver.devtools.sample_mail import generate_mailbox
from archiver.devtools.sandbox import DovecotSandbox

USER, PASSWORD = "bench", "bench-password"
TOP_ALL_LINES = 2**31 - 1


def raw_loop(sandbox: DovecotSandbox, command: str) -> tuple[float, int]:
    """Seconds and payload bytes of fetching every message with poplib (``RETR`` or ``TOP``), discarding it."""
    started = time.perf_counter()
    total = 0
    pop = poplib.POP3("127.0.0.1", sandbox.pop3_port, timeout=60)
    pop.user(USER)
    pop.pass_(PASSWORD)
    count, _size = pop.stat()
    for number in range(1, count + 1):
        _resp, lines, _octets = pop.retr(number) if command == "RETR" else pop.top(number, TOP_ALL_LINES)
        total += sum(len(line) + 2 for line in lines)
    pop.rset()  # Dovecot would mark every RETRieved message \Seen at QUIT; the next contender must find it unchanged
    pop.quit()
    return time.perf_counter() - started, total


def write_config(sandbox: DovecotSandbox, work: Path) -> Path:
    return measure.write_config(work, "pop3", sandbox.pop3_port, USER, PASSWORD)


def run_spans(archive: Path) -> list[float]:
    """Seconds from start to finish of each run in the catalog (the backup proper, before indexing)."""
    with sqlite3.connect(archive / "catalog.sqlite3") as db:
        rows = db.execute("SELECT started_at, ended_at FROM runs ORDER BY id").fetchall()
    return [(datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() for start, end in rows]


def bench_one(count: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="archiver-bench-pop3-") as tmp:
        work = Path(tmp)
        with DovecotSandbox(work / "dovecot") as sandbox:
            sandbox.add_user(USER, PASSWORD)
            started = time.perf_counter()
            messages = ((s.raw, s.flags, s.internaldate) for s in generate_mailbox(count, seed=seed))
            sandbox.append_many(USER, "INBOX", messages)
            fill_seconds = time.perf_counter() - started
            raw_loop(sandbox, "TOP")  # warm the server's caches so the first contender is not penalised
            retr_s, raw_bytes = raw_loop(sandbox, "RETR")
            top_s, _ = raw_loop(sandbox, "TOP")
            config = write_config(sandbox, work)
            command = [sys.executable, "-m", "archiver", "--config", str(config), "backup", "--wait-index", "--json"]
            full_s, full_rss, result = run_child(command)
            report = json.loads(result.stdout)[0] if result.returncode == 0 else {}
            again_s, again_rss, again = run_child(command)
            again_report = json.loads(again.stdout)[0] if again.returncode == 0 else {}
            stored = tree_bytes(work / "archive" / "blobs")
            run_s, again_run_s = run_spans(work / "archive")
    mb = raw_bytes / 1e6
    return {
        "messages": count,
        "raw_MB": round(mb, 1),
        "fill_s": round(fill_seconds, 1),
        "poplib_retr_s": round(retr_s, 2),
        "poplib_retr_msg_s": round(count / retr_s),
        "poplib_retr_MB_s": round(mb / retr_s, 1),
        "poplib_top_s": round(top_s, 2),
        "archiver_run_s": round(run_s, 2),
        "archiver_run_msg_s": round(count / run_s),
        "archiver_run_MB_s": round(mb / run_s, 1),
        "ratio_run_over_poplib_retr": round(run_s / retr_s, 2),
        "ratio_run_over_poplib_top": round(run_s / top_s, 2),
        "archiver_cli_s": round(full_s, 2),
        "archiver_cli_msg_s": round(count / full_s),
        "ratio_cli_over_poplib_retr": round(full_s / retr_s, 2),
        "archiver_peak_rss_MB": round(full_rss / 1024, 1),
        "archiver_messages_new": report.get("messages_new"),
        "blobs_new": report.get("blobs_new"),
        "stored_over_raw": round(stored / raw_bytes, 3),
        "no_change_rerun_cli_s": round(again_s, 3),
        "no_change_rerun_run_s": round(again_run_s, 3),
        "no_change_rerun_new": again_report.get("messages_new"),
        "rerun_peak_rss_MB": round(again_rss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, action="append", help="INBOX size (repeatable); default 1000")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    for count in args.messages or [1000]:
        print(json.dumps(bench_one(count, args.seed)))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
