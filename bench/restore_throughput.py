"""Restore throughput into an empty account of a real, private Dovecot, with baselines from the same run.

For each mailbox size it generates a seeded, realistic mailbox into a fresh Dovecot (user ``src``),
backs it up with ``archiver backup`` (not timed), and then times, into empty users of the same server:

(a) the baseline: a plain imapclient loop, one ``APPEND`` per message (flags + INTERNALDATE), one
    connection, bytes already in memory, folders created as it goes;
(b) the floor: the same with MULTIAPPEND batches of 200 (what a careful script could do);
(c) ``archiver restore --account src --to dst --in-place`` (a subprocess, so its peak RSS is its own):
    reads each blob from the store (zstd, sha256 checked), plans from the catalog, creates folders,
    appends with MULTIAPPEND;
(d) the same restore again: everything already there, so every message is skipped after the
    idempotence check (Message-ID + size, then sha256 of the server's copy);
(e) ``archiver export --format mbox`` and ``--format maildir`` of the account: seconds and peak RSS
    (streamed: RSS should not grow with the mailbox).

Prints one JSON line per size: messages/s, MB/s, ratios c/a and c/b, peak RSS.  All talk plain IMAP on
loopback, so the comparison is about the work, not TLS.

    python bench/restore_throughput.py                   # 1,000 messages (quick)
    python bench/restore_throughput.py --messages 5000   # the figure the issue asks for
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import imapclient
from measure import run_child

from archiver.devtools.sample_mail import generate_mailbox
from archiver.devtools.sandbox import DovecotSandbox, ensure_folder

SOURCE = ("src", "src-password")
BATCH = 200


def run_measured(arguments: list[str]) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run ``python -m archiver arguments``; return wall seconds, peak RSS in KB (process tree), and the result."""
    elapsed, peak_kb, result = run_child([sys.executable, "-m", "archiver", *arguments], quiet=True)
    if result.returncode != 0:
        print(
            f"  ! {' '.join(arguments[2:4])} exited {result.returncode}: {result.stderr.strip()[-500:]}",
            file=sys.stderr,
        )
    return elapsed, peak_kb, result


def append_loop(sandbox: DovecotSandbox, user: str, by_folder: dict[str, list], batch: int = 1) -> float:
    """Seconds to APPEND every message over one connection: one per command, or MULTIAPPEND batches."""
    client = sandbox.connect(user)
    started = time.perf_counter()
    try:
        for folder, messages in by_folder.items():
            ensure_folder(client, folder)
            if batch == 1:
                for raw, flags, when in messages:
                    client.append(folder, raw, flags, when)
                continue
            for start in range(0, len(messages), batch):
                chunk = [
                    {"msg": raw, "flags": flags, "date": when} for raw, flags, when in messages[start : start + batch]
                ]
                status, data = client.multiappend(folder, chunk)
                if status != "OK":
                    raise RuntimeError(f"MULTIAPPEND failed: {data!r}")
    finally:
        client.logout()
    return time.perf_counter() - started


def count_messages(sandbox: DovecotSandbox, user: str) -> int:
    client: imapclient.IMAPClient = sandbox.connect(user)
    try:
        total = 0
        for flags, _delim, name in client.list_folders():
            if b"\\Noselect" not in flags:
                total += client.folder_status(name, [b"MESSAGES"])[b"MESSAGES"]
        return total
    finally:
        client.logout()


def write_config(sandbox: DovecotSandbox, work: Path, users: list[tuple[str, str]]) -> Path:
    accounts = "".join(
        f"""
[[accounts]]
name = "{name}"
protocol = "imap"
host = "127.0.0.1"
port = {sandbox.imap_port}
security = "none"
username = "{name}"
password = "{password}"
timeout = 120
"""
        for name, password in users
    )
    path = work / "archiver.toml"
    path.write_text(f'[archive]\npath = "{work / "archive"}"\n{accounts}')
    path.chmod(0o600)
    return path


def bench_one(count: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="archiver-bench-") as tmp:
        work = Path(tmp)
        with DovecotSandbox(work / "dovecot") as sandbox:
            users = [SOURCE, ("loop", "pw-loop"), ("multi", "pw-multi"), ("dst", "pw-dst")]
            for name, password in users:
                sandbox.add_user(name, password)
            by_folder: dict[str, list] = defaultdict(list)
            raw_bytes = 0
            for sample in generate_mailbox(count, seed=seed):
                by_folder[sample.folder].append((sample.raw, tuple(sample.flags), sample.internaldate))
                raw_bytes += len(sample.raw)
            for folder, items in by_folder.items():
                sandbox.append_many(SOURCE[0], folder, items)
            config = write_config(sandbox, work, users)
            archiver = ["--config", str(config)]
            backup_s, _rss, backup = run_measured([*archiver, "backup", "--account", "src", "--wait-index", "--json"])
            if backup.returncode != 0:
                raise SystemExit("backup failed; nothing to restore")

            loop_s = append_loop(sandbox, "loop", by_folder)
            multi_s = append_loop(sandbox, "multi", by_folder, batch=BATCH)
            del by_folder
            restore = [*archiver, "restore", "--account", "src", "--to", "dst", "--in-place", "--json"]
            restore_s, restore_rss, result = run_measured(restore)
            report = json.loads(result.stdout) if result.returncode == 0 else {}
            again_s, again_rss, again = run_measured(restore)
            again_report = json.loads(again.stdout) if again.returncode == 0 else {}
            on_server = count_messages(sandbox, "dst")
            exports = {}
            for fmt in ("mbox", "maildir"):
                seconds, rss, _ = run_measured(
                    [*archiver, "export", "--account", "src", "--format", fmt, "-o", str(work / f"export-{fmt}")]
                )
                exports[fmt] = (seconds, rss)
    mb = raw_bytes / 1e6
    return {
        "messages": count,
        "raw_MB": round(mb, 1),
        "backup_s": round(backup_s, 2),
        "append_loop_s": round(loop_s, 2),
        "append_loop_msg_s": round(count / loop_s),
        "append_loop_MB_s": round(mb / loop_s, 1),
        "multiappend_floor_s": round(multi_s, 2),
        "multiappend_floor_msg_s": round(count / multi_s),
        "restore_s": round(restore_s, 2),
        "restore_msg_s": round(count / restore_s),
        "restore_MB_s": round(mb / restore_s, 1),
        "ratio_restore_over_append_loop": round(restore_s / loop_s, 2),
        "ratio_restore_over_multiappend_floor": round(restore_s / multi_s, 2),
        "restore_peak_rss_MB": round(restore_rss / 1024, 1),
        "restore_appended": report.get("appended"),
        "restore_failed": report.get("failed"),
        "messages_on_target": on_server,
        "rerun_s": round(again_s, 2),
        "rerun_msg_s": round(count / again_s),
        "rerun_appended": again_report.get("appended"),
        "rerun_skipped": again_report.get("skipped"),
        "rerun_peak_rss_MB": round(again_rss / 1024, 1),
        **{f"export_{fmt}_s": round(s, 2) for fmt, (s, _r) in exports.items()},
        **{f"export_{fmt}_peak_rss_MB": round(r / 1024, 1) for fmt, (_s, r) in exports.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, action="append", help="mailbox size (repeatable); default 1000")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    for count in args.messages or [1000]:
        print(json.dumps(bench_one(count, args.seed)))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
