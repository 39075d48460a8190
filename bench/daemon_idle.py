"""Idle cost of ``archiver daemon``: CPU share and RSS while nothing is due.

Starts a private Dovecot with a small mailbox, starts the daemon (scheduler +
web UI + /metrics) with two accounts on an hourly schedule, waits for their
first backups (a new account runs at once), then samples the daemon's
``/proc/<pid>/stat`` CPU time and ``VmRSS`` for ``--seconds`` (the issue's
figure is 600).  A /metrics scrape every ``--scrape`` seconds (0: none) shows
what Prometheus adds.  Targets: < 1 % CPU, RSS < 100 MB.  The backups run in
child processes, so their memory is not the daemon's.

    python bench/daemon_idle.py --seconds 600 --scrape 15
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from archiver.catalog import Catalog
from archiver.devtools.sample_mail import generate_mailbox
from archiver.devtools.sandbox import DovecotSandbox, free_ports
from archiver.memory import proc_kb

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_mb(pid: int) -> float:
    return proc_kb(pid, "VmRSS") / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="idle measuring window (issue: 600)")
    parser.add_argument("--scrape", type=float, default=15.0, help="seconds between /metrics scrapes (0: none)")
    parser.add_argument("--messages", type=int, default=300, help="messages per account")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="archiver-idle-") as tmp, DovecotSandbox(Path(tmp) / "dovecot") as dovecot:
        root = Path(tmp)
        accounts = ""
        for number in (1, 2):
            name, password = f"idle{number}", f"idle-password-{number}"
            dovecot.add_user(name, password)
            samples = generate_mailbox(args.messages, seed=number, folders=4)
            by_folder: dict[str, list] = {}
            for s in samples:
                by_folder.setdefault(s.folder, []).append((s.raw, s.flags, s.internaldate))
            for folder, items in by_folder.items():
                dovecot.append_many(name, folder, items)
            accounts += (
                f'[[accounts]]\nname = "{name}"\nprotocol = "imap"\nhost = "127.0.0.1"\nport = {dovecot.imap_port}\n'
                f'security = "starttls"\nusername = "{name}"\npassword = "{password}"\n'
                f'tls_ca_file = {json.dumps(str(dovecot.ca_file))}\nschedule = "every 1h"\n'
            )
        port = free_ports(1)[0]
        config = root / "archiver.toml"
        config.write_text(
            f"[archive]\npath = {json.dumps(str(root / 'archive'))}\n[scheduler]\njitter = 0\n"
            f'[web]\nlisten = "127.0.0.1:{port}"\n{accounts}'
        )
        config.chmod(0o600)
        log = (root / "daemon.log").open("wb")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "archiver", "--config", str(config), "daemon"], stdout=log, stderr=log
        )
        try:
            started = time.monotonic()
            while True:  # both first backups done
                if (root / "archive" / Catalog.FILENAME).exists():
                    catalog = Catalog.open(root / "archive", readonly=True)
                    try:
                        done = catalog.db.execute("SELECT COUNT(*) FROM runs WHERE status = 'ok'").fetchone()[0]
                    finally:
                        catalog.close()
                    if done >= 2:
                        break
                if daemon.poll() is not None or time.monotonic() - started > 300:
                    raise SystemExit(f"daemon did not finish its first backups; see {root / 'daemon.log'}")
                time.sleep(0.5)
            print(f"first backups of 2 x {args.messages} messages done in {time.monotonic() - started:.1f} s")
            time.sleep(2.0)  # let the run bookkeeping settle
            cpu0, wall0 = cpu_seconds(daemon.pid), time.monotonic()
            peak = rss_mb(daemon.pid)
            scrapes = 0
            next_scrape = wall0
            while time.monotonic() - wall0 < args.seconds:
                if args.scrape and time.monotonic() >= next_scrape:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                        response.read()
                    scrapes += 1
                    next_scrape += args.scrape
                peak = max(peak, rss_mb(daemon.pid))
                time.sleep(1.0)
            cpu = cpu_seconds(daemon.pid) - cpu0
            wall = time.monotonic() - wall0
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
            log.close()
    share = 100 * cpu / wall
    print(f"idle window {wall:.0f} s, {scrapes} /metrics scrapes")
    print(f"daemon CPU {cpu:.2f} s = {share:.3f} % of one core (target < 1 %)")
    print(f"daemon RSS peak {peak:.1f} MB (target < 100 MB)")
    print(f"ratios to target: CPU {share / 1.0:.3f}, RSS {peak / 100:.2f}")


if __name__ == "__main__":
    main()
