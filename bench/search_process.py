"""Whole-process search: ``archiver search`` started and finished as a user runs it, against notmuch and mu.

    python bench/search.py --messages 10000 --dir D          # builds D/archive, D/maildir, D/notmuch-config
    python bench/search_process.py --dir D [--baseline /path/to/other/checkout] [--runs 15]

Each query (a sender, a subject word, a body word, a date range, and a body word with
``--limit 1000``) is run ``--runs`` times as a new process by every tool, the tools
interleaved round by round so that a machine shared with other work slows them alike.
Printed per query and tool: median and 95th percentile of the wall time, and the median
CPU time (user + system, the process and its children), which a busy machine inflates
less.  ``--baseline`` adds the same commands run from another checkout of archiver (the
code base before a change): the A/B of a change in one run.

``mu`` is run when it is on PATH (its index is built in ``D/mu`` on first use); notmuch when
``D/notmuch-config`` exists (``bench/search.py`` writes it).

Python's bytecode: an installed archiver has its ``.pyc`` files; a checkout run with
``PYTHONDONTWRITEBYTECODE=1`` (as in some sandboxes) compiles every module it imports at
every start.  By default each checkout gets a private, warmed ``PYTHONPYCACHEPREFIX`` (as
installed); ``--no-bytecode-cache`` measures without one.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import percentile, pick_queries  # bench/search.py: the same query picks

from archiver.archive import Archive
from archiver.config import ArchiveConfig

ROOT = Path(__file__).resolve().parents[1]


def archiver_queries(archive: Archive) -> dict[str, list[str]]:
    """Label -> ``archiver search`` arguments, from the archive's own vocabulary."""
    picked = pick_queries(archive, random.Random(7))
    subject_word = picked["phrase"].strip('"').split()[0].lower()
    word = picked["single word"]
    return {
        "from:": [picked["from:"]],
        "subject:": [f"subject:{subject_word}"],
        "body word": [word],
        "date range": ["date:2019-03..2019-05"],
        "--limit 1000": ["--limit", "1000", word],
    }


def notmuch_args(label: str, args: list[str]) -> list[str]:
    """The same query for ``notmuch search`` (date ranges spelt its way; 20 results unless --limit)."""
    if label == "date range":
        return ["--limit=20", "date:2019-03-01..2019-05-31"]
    if label == "--limit 1000":
        return ["--limit=1000", args[-1]]
    return ["--limit=20", *args]


def mu_args(label: str, args: list[str]) -> list[str]:
    """The same query for ``mu find`` (dates as YYYYMMDD ranges)."""
    if label == "date range":
        return ["--maxnum=20", "date:20190301..20190531"]
    if label == "--limit 1000":
        return ["--maxnum=1000", args[-1]]
    return ["--maxnum=20", *args]


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its children) of one run; the output is discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):  # mu exits 1 when nothing matches
        raise SystemExit(f"{command[:4]}… exited {done.returncode}: {done.stderr.decode(errors='replace')[-500:]}")
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def archiver_env(tree: Path, pycache: Path | None) -> dict[str, str]:
    """The environment that runs ``tree``'s archiver, with a private bytecode cache unless ``pycache`` is None."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def ensure_mu(work: Path) -> Path | None:
    """mu's index of ``work/maildir`` in ``work/mu`` (built once), or None without mu or the Maildir."""
    if shutil.which("mu") is None or not (work / "maildir").is_dir():
        return None
    home = work / "mu"
    if not (home / "xapian").exists():
        subprocess.run(["mu", "init", f"--muhome={home}", f"--maildir={work / 'maildir'}"], check=True)
        subprocess.run(["mu", "index", f"--muhome={home}", "--quiet"], check=True)
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True, help="bench/search.py's --dir (archive, maildir)")
    parser.add_argument("--baseline", type=Path, help="another archiver checkout to compare with (A/B)")
    parser.add_argument("--runs", type=int, default=15, help="processes per query and tool")
    parser.add_argument("--no-bytecode-cache", action="store_true", help="run the checkouts without .pyc files")
    args = parser.parse_args()

    with Archive(ArchiveConfig(path=args.dir / "archive"), readonly=True) as archive:
        queries = archiver_queries(archive)
        messages = archive.catalog.archive_totals()["blobs"]
    scratch = Path(tempfile.mkdtemp(prefix="bench-search-process-"))
    config = scratch / "archiver.toml"
    config.write_text(f'[archive]\npath = "{args.dir / "archive"}"\n')
    config.chmod(0o600)

    tools: dict[str, tuple[list[str], dict[str, str], object]] = {}  # name -> (argv head, env, args for a label)
    trees = {"archiver": ROOT} | ({"archiver (baseline)": args.baseline} if args.baseline else {})
    for name, tree in trees.items():
        pycache = None if args.no_bytecode_cache else scratch / f"pyc-{len(tools)}"
        head = [sys.executable, "-m", "archiver", "--config", str(config), "search"]
        tools[name] = (head, archiver_env(tree, pycache), lambda label, a: a)
    if (args.dir / "notmuch-config").exists() and shutil.which("notmuch"):
        env = dict(os.environ, NOTMUCH_CONFIG=str(args.dir / "notmuch-config"))
        tools["notmuch"] = (["notmuch", "search"], env, notmuch_args)
    mu_home = ensure_mu(args.dir)
    if mu_home is not None:
        tools["mu"] = (["mu", "find", f"--muhome={mu_home}"], dict(os.environ), mu_args)

    figures: dict = {"messages": messages, "runs": args.runs, "cpus": os.cpu_count(), "queries": {}}
    figures["bytecode_cache"] = not args.no_bytecode_cache
    figures["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
    try:
        for label, query in queries.items():
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in tools}
            for head, env, translate in tools.values():
                timed(head + translate(label, query), env)  # warm-up: page cache, bytecode cache
            for _ in range(args.runs):
                for name, (head, env, translate) in tools.items():
                    samples[name].append(timed(head + translate(label, query), env))
            row = {}
            for name, runs in samples.items():
                walls, cpus = [w for w, _ in runs], [c for _, c in runs]
                row[name] = {
                    "median_ms": round(1000 * statistics.median(walls), 1),
                    "p95_ms": round(1000 * percentile(walls, 0.95), 1),
                    "cpu_median_ms": round(1000 * statistics.median(cpus), 1),
                }
            figures["queries"][label] = {"archiver_args": query, "tools": row}
            print(f"{label:14} {' '.join(query)[:40]:40}", flush=True)
            for name, figure in row.items():
                print(f"    {name:22} median {figure['median_ms']:7.1f} ms  p95 {figure['p95_ms']:7.1f} ms  "
                      f"cpu {figure['cpu_median_ms']:7.1f} ms", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    figures["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
