"""The web UI's latency: one client on one big folder, or many logged-in users at once (``--clients``).

Without ``--clients``: p50/p95 latency of the folder page and the message page on one big folder.

The archive is built through the real code paths (BlobStore.put_batch, then
Catalog.add_placements, as a backup's batches do); pages are fetched through
the real Flask app (test client, so the figures are the app's own time, no
network).  Keyset pagination should keep page 1,000 as fast as page 1; the
baseline printed beside it is page 1 in the same run.  "as-of" is the same page
with the date picker set (the folder as it stood after a given run).

    python bench/web_latency.py [--messages 100000] [--samples 30] [--dir DIR]

With ``--clients N`` (see bench/web_load.py): N users, each logged in with
their own accounts, ask ``archiver serve`` (the real command, waitress) for
search pages, browse pages or both (``--mix``) for ``--seconds``; the bench
prints req/s, p50, p95, p99 and errors per kind of request, and the server's
CPU per request.  ``--during-backup M`` then measures browsing alone, idle,
and while ``archiver backup`` fetches M new messages from a private Dovecot
into the same archive and updates the index (with ``--backup-nice N`` once
more with the backup at a lower CPU priority).  The Dovecot runs on the same
cores, which a real mail server would not.  Each ``--tree`` (a source
tree, e.g. the main branch's checkout) is served in turn, ``--rounds`` times,
interleaved, so before/after figures come from one run on one machine.

    python bench/web_latency.py --clients 20 --messages 10000 --dir DIR --mix both \\
        [--during-backup 2000] [--tree /work/main --tree .] [--rounds 2] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import web_load as load
from argon2 import PasswordHasher

from archiver.archive import Archive
from archiver.devtools.sample_mail import generate_mailbox
from archiver.devtools.sandbox import DovecotSandbox
from tests.fixtures.webdata import add_messages, message, web_config
from web import create_app


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed(client, urls: list[str], samples: int) -> dict[str, tuple[float, float]]:
    """(p50, p95) ms per URL, measured round-robin so a load change on the machine hits every URL alike."""
    for url in urls:  # warm the page cache and SQLite's statement cache first: steady state is what we report
        for _ in range(3):
            client.get(url)
    times: dict[str, list[float]] = {url: [] for url in urls}
    for _ in range(samples):
        for url in urls:
            start = time.perf_counter()
            response = client.get(url)
            times[url].append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, (url, response.status_code)
    return {url: (statistics.median(t), percentile(t, 95)) for url, t in times.items()}


def concurrent(args: argparse.Namespace) -> None:
    """Many users at once against ``archiver serve`` from each ``--tree``, interleaved (see bench/web_load.py)."""
    root = args.dir or Path(tempfile.mkdtemp(prefix="web-load-"))
    root.mkdir(parents=True, exist_ok=True)
    load.build_archive(root, args.messages, args.accounts)
    trees = [t.resolve() for t in args.tree] or [Path(__file__).resolve().parents[1]]
    rng = random.Random(7)
    pools: dict = {"search": load.search_pool(root, rng)}
    results: dict[str, dict[str, load.Sample]] = {str(t): {} for t in trees}
    sandbox, incoming, extra = None, "", ""
    if args.during_backup:
        sandbox = DovecotSandbox(root / f"dovecot-{os.getpid()}").start()
        sandbox.add_user("incoming", "incoming-pw")
        incoming = f"incoming{int(time.time())}"
        extra = (
            f'[[accounts]]\nname = "{incoming}"\nprotocol = "imap"\nhost = "127.0.0.1"\n'
            f'port = {sandbox.imap_port}\nsecurity = "none"\nusername = "incoming"\npassword = "incoming-pw"\n'
        )
    config = load.write_config(root, args.accounts, args.clients, extra)
    print(f"{args.clients} clients, mix {args.mix}, {args.seconds:.0f} s per phase, load {os.getloadavg()[0]:.1f}")
    try:
        for round_no in range(args.rounds):
            for tree in trees:
                label = f"round {round_no + 1} {tree.name or tree}"
                server = load.Server(tree, config, root / "server.log", args.server_threads)
                try:
                    clients = load.make_clients(server.base, root, args.clients, args.accounts, rng, pools)
                    load.run_clients(server.base, clients, args.mix, 3.0, load.Sample())  # warm-up
                    phases = [("steady", args.mix, None)]
                    if args.during_backup:
                        phases += [("browse idle", "browse", None), ("browse during backup", "browse", 0)]
                        if args.backup_nice:
                            phases.append((f"browse during backup nice {args.backup_nice}", "browse", args.backup_nice))
                    for phase, mix, during in phases:
                        sample = results[str(tree)].setdefault(phase, load.Sample())
                        one = load.Sample()
                        cpu = server.cpu_seconds()
                        if during is not None:
                            backup = start_backup(sandbox, tree, config, incoming, args.during_backup, during)
                            load.run_clients(
                                server.base, clients, mix, 0, one, until=lambda b=backup: b.poll() is not None
                            )
                            print(f"  backup of {args.during_backup} new messages exited {backup.returncode} "
                                  f"in {one.seconds:.1f} s")  # fmt: skip
                        else:
                            load.run_clients(server.base, clients, mix, args.seconds, one)
                        one.server_cpu = server.cpu_seconds() - cpu
                        load.summary(f"{label}: {phase}", one)
                        for kind, values in one.latencies.items():
                            sample.latencies.setdefault(kind, []).extend(values)
                        sample.errors += one.errors
                        sample.seconds += one.seconds
                        sample.server_cpu += one.server_cpu
                finally:
                    server.stop()
    finally:
        if sandbox is not None:
            sandbox.close()
    print("\nall rounds (pooled):")
    figures = {}
    for tree, phases in results.items():
        print(tree)
        figures[tree] = {phase: load.summary(phase, sample) for phase, sample in phases.items()}
    print(json.dumps({"clients": args.clients, "messages": args.messages, "figures": figures}, indent=1))


def start_backup(
    sandbox: DovecotSandbox, tree: Path, config: Path, account: str, count: int, nice: int
) -> subprocess.Popen:
    """Put ``count`` new messages on the server, then start ``archiver backup`` of them (its index update too).

    ``nice``: the backup's CPU priority (``os.nice`` increment), to show what a lower one buys browsing.
    """
    by_folder: dict[str, list] = {}
    for sample in generate_mailbox(count, seed=time.time_ns() % 2**32):
        by_folder.setdefault(sample.folder, []).append((sample.raw, sample.flags, sample.internaldate))
    for folder, items in by_folder.items():
        sandbox.append_many("incoming", folder, items)
    command = [sys.executable, "-m", "archiver", "--config", str(config), "backup", "--account", account]
    help_text = subprocess.run([*command[:5], "backup", "--help"], capture_output=True, text=True,
                               env=dict(os.environ, PYTHONPATH=str(tree))).stdout  # fmt: skip
    if "--wait-index" in help_text:  # an index update in a worker: browsing shares the CPU with it too
        command.append("--wait-index")
    if nice:
        command = ["nice", "-n", str(nice), *command]
    return subprocess.Popen(command, env=dict(os.environ, PYTHONPATH=str(tree)), cwd=tree,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=None, help="default 100000; 10000 with --clients")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--clients", type=int, default=0, help="concurrent logged-in users (0: one client)")
    parser.add_argument("--mix", choices=("search", "browse", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=30.0, help="per phase")
    parser.add_argument("--accounts", type=int, default=4, help="accounts the messages are split over")
    parser.add_argument("--during-backup", type=int, default=0, metavar="M", help="new messages a backup fetches")
    parser.add_argument("--backup-nice", type=int, default=0, metavar="N",
                        help="with --during-backup: also browse during a backup run at nice N")  # fmt: skip
    parser.add_argument("--tree", type=Path, action="append", default=[], help="source tree to serve (repeatable)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--server-threads", type=int, default=None, help="serve --threads (default: its own)")
    args = parser.parse_args()
    if args.clients:
        args.messages = args.messages or 10_000
        concurrent(args)
    else:
        args.messages = args.messages or 100_000
        single(args)


def single(args: argparse.Namespace) -> None:
    root = args.dir or Path(tempfile.mkdtemp(prefix="web-bench-"))
    users = f'[[web.users]]\nname = "b"\npassword_hash = "{PasswordHasher().hash("b")}"\nadmin = true\n'
    config = web_config(root, users, accounts=("big",))
    started = time.perf_counter()
    with Archive(config.archive) as archive:
        if archive.catalog.account_id("big") is None:
            raws = (message(f"Subject {i}", f"body {i} " * 20, n=i) for i in range(args.messages))
            add_messages(archive, "big", "INBOX", raws, batch=2000)
            print(f"built {args.messages} messages in {time.perf_counter() - started:.0f} s at {root}")
        else:
            held = archive.catalog.account_totals(archive.catalog.account_id("big"))["messages"]
            print(f"reusing the archive at {root} ({held} messages; --messages ignored)")
    app = create_app(config)
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    client.post("/login", data={"username": "b", "password": "b", "csrf_token": token})
    catalog = app.extensions["archiver_archive"].catalog
    folder_id = catalog.web_folders(catalog.account_id("big"))[0]["id"]
    page_size = 50
    wanted = [p for p in (1, 10, 100, 1000) if (p - 1) * page_size < args.messages]
    cursors: dict[int, str | None] = {1: None}
    before = None
    for page in range(1, max(wanted) + 1):  # walk the pages once to get each page's keyset cursor
        if page in wanted:
            cursors[page] = before
        rows = catalog.web_folder_page(folder_id, before=before, limit=page_size)
        before = (rows[-1]["internaldate"], rows[-1]["id"])
    print(
        f"{'page':>6} {'folder p50':>11} {'p95':>8} {'as-of p50':>10} {'p95':>8} {'message p50':>12} {'p95':>8}"
        f"  (ms, {args.samples} samples)"
    )
    today = date.today().isoformat()
    urls: dict[int, tuple[str, str, str]] = {}
    for page in wanted:
        cursor = cursors[page]
        url = f"/f/{folder_id}" + (f"?before={cursor[0].replace('+', '%2B')}|{cursor[1]}" if cursor else "")
        first = catalog.web_folder_page(folder_id, before=cursor, limit=1)[0]["id"]
        urls[page] = (url, url + ("&" if cursor else "?") + f"as_of={today}", f"/m/{first}")
    result = timed(client, [u for triple in urls.values() for u in triple], args.samples)
    base = result[urls[wanted[0]][0]][0]
    for page in wanted:
        (f50, f95), (a50, a95), (m50, m95) = (result[u] for u in urls[page])
        print(
            f"{page:>6} {f50:>11.1f} {f95:>8.1f} {a50:>10.1f} {a95:>8.1f} {m50:>12.1f} {m95:>8.1f}"
            f"  folder p50 ×{f50 / base:.2f} of page 1"
        )
    app.extensions["archiver_archive"].close()


if __name__ == "__main__":
    main()
