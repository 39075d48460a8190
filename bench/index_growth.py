"""Index growth: does the index update after a backup cost what its new mail costs, whatever the index holds?

    python bench/index_growth.py [--rounds 50] [--per-round 200] [--code NAME=TREE]... [--dir D]

Builds a growing archive in rounds: each round stores ``--per-round`` new generated messages
(blobs and catalog, as a backup does after fetching: ``bench/search.py``'s ``build``), then runs the
index update a backup runs (``update_index`` with the default ``[index] memory_mb``) in a child
process, timing it and sampling the peak memory of the child's whole process tree from /proc.
At the end: the index's segment count, then one compaction (``compact`` within the same budget)
and one full merge, each timed and measured the same way.

``--code NAME=TREE`` (repeatable) runs the same rounds, interleaved, for each source tree (its own
archive, the same messages): e.g. ``--code main=/work/main --code branch=.`` compares a change
against its base in one run on one machine (a tree without ``compact`` skips those lines).
Prints one line per round and a JSON summary: per tree, the per-round seconds (and their medians
over the first and the last fifth of the rounds: a flat curve has equal medians) and peaks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import run_child
from search import build

from archiver.archive import Archive
from archiver.config import ArchiveConfig
from archiver.devtools.sample_mail import generate_mailbox

#: What a round's child runs, in the tree under test: the update a backup runs, or a compaction.
CHILD = """
import json, sys, time
from pathlib import Path
from archiver.archive import Archive
from archiver.config import ArchiveConfig
from archiver import index
from archiver.index.writer import open_live
from archiver.memory import tune_allocator

tune_allocator()  # as the CLI does
with Archive(ArchiveConfig(path=Path(sys.argv[1]))) as archive:
    started = time.perf_counter()
    if sys.argv[2] == "update":
        report = index.update_index(archive)
        done = {"indexed": report.indexed}
    elif not hasattr(index, "compact"):
        done = {"skipped": "no compact() in this tree"}
    else:
        report = index.compact(archive, memory_mb=150 if sys.argv[2] == "compact" else None, full=sys.argv[2] == "full")
        done = {"steps": report.steps, "documents": report.documents, "stopped": report.stopped}
    done["seconds"] = round(time.perf_counter() - started, 3)
    done["segments"] = len(open_live(archive.root)._segments())
print(json.dumps(done))
"""


def child(tree: Path, archive: Path, what: str) -> dict:
    """Run CHILD in ``tree`` on ``archive``; its JSON plus wall seconds and the tree's peak RSS/PSS (MB)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    peaks: dict = {}
    wall, _, result = run_child([sys.executable, "-P", "-c", CHILD, str(archive), what], env=env, peaks=peaks)
    out = json.loads(result.stdout.strip().splitlines()[-1]) if result.returncode == 0 else {"error": result.stderr}
    out.update(wall=round(wall, 2), peak_rss_mb=round(peaks["rss_kb"] / 1024, 1))
    out["peak_pss_mb"] = round(peaks["pss_kb"] / 1024, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--code", action="append", default=[], help="NAME=TREE (default: this tree)")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir, removed)")
    args = parser.parse_args()
    trees = dict(spec.split("=", 1) for spec in args.code) or {"this": str(Path(__file__).resolve().parents[1])}
    work = args.dir or Path(tempfile.mkdtemp(prefix="bench-growth-"))
    figures: dict = {"rounds": args.rounds, "per_round": args.per_round, "cpus": os.cpu_count(),
                     "loadavg_before": [round(x, 2) for x in os.getloadavg()], "trees": {}}  # fmt: skip
    try:
        for name in trees:
            shutil.rmtree(work / name, ignore_errors=True)
            figures["trees"][name] = {"rounds": []}
        for number in range(args.rounds):
            messages = list(generate_mailbox(args.per_round, seed=1000 + number))
            for name, tree in trees.items():  # interleaved: the machine's load hits every tree alike
                with Archive(ArchiveConfig(path=work / name)) as archive:
                    build(archive, "bench", messages)
                    total = archive.catalog.archive_totals()["blobs"]
                out = child(Path(tree), work / name, "update")
                out["messages"] = total
                figures["trees"][name]["rounds"].append(out)
                print(f"round {number + 1:3} {name:8} {total:6} msgs: update {out.get('seconds', '?'):>7} s "
                      f"(process {out['wall']:>6} s), peak tree {out['peak_rss_mb']:>6} MB RSS "
                      f"{out['peak_pss_mb']:>6} MB PSS, {out.get('segments', '?')} segments", flush=True)  # fmt: skip
        for name, tree in trees.items():
            summary = figures["trees"][name]
            seconds = [r["seconds"] for r in summary["rounds"] if "seconds" in r]
            fifth = max(1, len(seconds) // 5)
            summary["first_fifth_median_s"] = round(statistics.median(seconds[:fifth]), 3)
            summary["last_fifth_median_s"] = round(statistics.median(seconds[-fifth:]), 3)
            summary["max_round_s"] = max(seconds)
            summary["peak_rss_mb"] = max(r["peak_rss_mb"] for r in summary["rounds"])
            summary["peak_pss_mb"] = max(r["peak_pss_mb"] for r in summary["rounds"])
            summary["segments"] = summary["rounds"][-1].get("segments")
            summary["compact"] = child(Path(tree), work / name, "compact")
            summary["full_merge"] = child(Path(tree), work / name, "full")
            print(f"{name}: first fifth median {summary['first_fifth_median_s']} s, last fifth "
                  f"{summary['last_fifth_median_s']} s, worst round {summary['max_round_s']} s, peak "
                  f"{summary['peak_rss_mb']} MB; {summary['segments']} segments; compact {summary['compact']}; "
                  f"full merge {summary['full_merge']}", flush=True)  # fmt: skip
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    figures["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    for summary in figures["trees"].values():
        summary["rounds"] = [{k: r.get(k) for k in ("messages", "seconds", "peak_rss_mb", "segments")}
                             for r in summary["rounds"]]  # fmt: skip
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
