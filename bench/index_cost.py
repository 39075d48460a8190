"""What the search index costs, against mbsync, mu and notmuch in the same run (issue 16's table).

    python bench/index_cost.py --messages 10000 [--dir D --reuse] [--skip-100k]

On a loopback Dovecot holding the generated mailbox of ``bench/backup_throughput.py`` (same
generator and seed), it times, as a user runs each command (a whole process; peak memory of
the whole process tree, processes it leaves running included):

1. a first backup: until ``archiver backup`` returns (durable) and until its index has caught
   up (searchable: with ``--wait-index`` where the command has it, and until the last process
   it started has ended), its ``--no-index`` run, against ``mbsync`` into an empty Maildir;
2. a no-change re-run against mbsync's, and the ``python -X importtime`` total of its imports;
3. 100 new messages, default and ``--no-index``, against mbsync's incremental pull;
4. ``archiver reindex`` against ``mu index`` and ``notmuch new`` over mbsync's Maildir;
5. ``archiver search`` (from:, subject:, a body word, a date range; ``--limit 1000``) against
   ``mu find`` and ``notmuch search`` with the same queries translated;
6. then, unless ``--skip-100k``, a first backup of ``--big`` (100,000) messages against mbsync.

Cheap steps are repeated ``--repeat`` times (median), interleaved with their peer; the
expensive ones (the first backup with its index, the three index builds) ``--slow-repeat``
times; each search ``--search-runs`` times after an untimed run.  Prints one table
(archiver / peer time: lower is better) and one JSON line.  docs/benchmarks.md says more.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import measure
from mailserver import PASSWORD, USER, Mbsync, fill, keep_mailbox, restore_mailbox
from measure import run_child
from peers import Mu, Notmuch

from archiver.config import IndexConfig
from archiver.devtools.sample_mail import generate_mailbox
from archiver.devtools.sandbox import DovecotSandbox

#: archiver's query, mu's and notmuch's for the same question (the generator's people, words and years).
QUERIES = {
    "from:": ("from:dmitry@example.ru",) * 3,
    "subject:": ("subject:invoice",) * 3,
    "body word": ("postmortem",) * 3,
    "date range": ("date:2019-03..2019-05", "date:20190301..20190531", "date:2019-03-01..2019-05-31"),
}
LIMIT_QUERY = "body word"  # the query of the --limit 1000 line: it has more than 1,000 hits at 10,000


class Archiver:
    """``python -m archiver`` on one archive (its own directory and config) of the bench's account."""

    def __init__(self, sandbox: DovecotSandbox, work: Path) -> None:
        work.mkdir(parents=True)
        self.work = work
        self.config = measure.write_config(work, "imap", sandbox.imap_port, USER, PASSWORD)
        self.base = [sys.executable, "-m", "archiver", "--config", str(self.config)]

    def run(self, *args: str) -> dict | None:
        """Run a command to its end and to the end of whatever it left running; None when it failed.

        The figures: ``s`` (until the command returned), ``settled_s``, ``peak_MB`` (RSS of the
        whole tree, leftovers included) and ``pss_MB``.
        """
        peaks: dict = {}
        elapsed, rss, result = run_child([*self.base, *args], peaks=peaks, settle=True)
        if result.returncode != 0:
            return None
        return {
            "s": elapsed,
            "settled_s": peaks["settled_s"],
            "peak_MB": rss / 1024,
            "pss_MB": peaks["pss_kb"] / 1024,
        }

    def has_option(self, command: str, option: str) -> bool:
        """Whether ``archiver COMMAND --help`` lists ``option`` (the bench runs on older code too)."""
        _, _, result = run_child([*self.base, command, "--help"], quiet=True)
        return option in result.stdout

    def import_ms(self) -> tuple[float, int]:
        """(ms, modules) of every import of a no-change ``archiver backup``, from ``python -X importtime``."""
        command = [sys.executable, "-X", "importtime", *self.base[1:], "backup"]
        _, _, result = run_child(command, settle=True)
        return importtime_total(result.stderr)


def importtime_total(stderr: str) -> tuple[float, int]:
    """(total ms of the "self" column, modules) of ``python -X importtime``'s report."""
    total_us = modules = 0
    for line in stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if line.startswith("import time:") and fields[0].strip().isdigit():
            total_us += int(fields[0])
            modules += 1
    return total_us / 1000, modules


class Run:
    """The figures of one bench run: named lists of samples (seconds, MB), reduced to medians at the end."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self.facts: dict[str, object] = {}

    def add(self, name: str, value: float | None) -> None:
        if value is not None:
            self.samples.setdefault(name, []).append(value)

    def add_archiver(self, name: str, figures: dict | None) -> None:
        """``name_s``, ``name_settled_s``, ``name_peak_MB``, ``name_pss_MB`` of one archiver command."""
        if figures is None:
            self.facts[f"{name}_failed"] = True
            return
        for key in ("s", "settled_s", "peak_MB", "pss_MB"):
            self.add(f"{name}_{key}", figures[key])

    def add_peer(self, name: str, figures: tuple[float, int] | None) -> None:
        if figures is not None:
            self.add(f"{name}_s", figures[0])
            self.add(f"{name}_peak_MB", figures[1] / 1024)

    def medians(self) -> dict[str, float]:
        return {name: statistics.median(values) for name, values in self.samples.items()}


def first_backups(run: Run, sandbox: DovecotSandbox, work: Path, args: argparse.Namespace, prefix: str = ""):
    """Step 1: mbsync, ``--no-index`` and default first backups, interleaved; returns the ones kept.

    (mbsync's Maildir, the default archive, the ``--no-index`` archive): the last of each, their
    earlier repetitions removed.
    """
    kept: dict[str, object] = {}
    reps = max(args.repeat, args.slow_repeat) if not prefix else 1
    wait_index = None
    for rep in range(reps):
        if rep < args.repeat or prefix:
            mbsync = Mbsync(sandbox, work / f"{prefix}mbsync-{rep}")
            run.add_peer(f"{prefix}full_mbsync", mbsync.pull())
            replace(kept, "mbsync", mbsync, Mbsync.remove)
        if rep < args.repeat and not prefix:
            plain = Archiver(sandbox, work / f"no-index-{rep}")
            run.add_archiver("full_no_index", plain.run("backup", "--no-index"))
            replace(kept, "plain", plain, lambda old: shutil.rmtree(old.work))
        if rep < args.slow_repeat or prefix:
            default = Archiver(sandbox, work / f"{prefix}default-{rep}")
            if wait_index is None:
                wait_index = default.has_option("backup", "--wait-index")
                run.facts["backup_has_wait_index"] = wait_index
            run.add_archiver(f"{prefix}full_default", default.run("backup"))
            replace(kept, "default", default, lambda old: shutil.rmtree(old.work))
            if wait_index and not prefix:
                waiting = Archiver(sandbox, work / f"wait-index-{rep}")
                run.add_archiver("full_wait_index", waiting.run("backup", "--wait-index"))
                shutil.rmtree(waiting.work)
    return kept.get("mbsync"), kept.get("default"), kept.get("plain")


def replace(kept: dict, key: str, new: object, remove: Callable[[object], None]) -> None:
    """Keep ``new`` under ``key``; remove what was kept there before (disk: 100,000 messages are 7 GB)."""
    if key in kept:
        remove(kept[key])
    kept[key] = new


def later_runs(run: Run, sandbox: DovecotSandbox, mbsync: Mbsync, default: Archiver, plain: Archiver, args) -> None:
    """Steps 2 and 3: no-change re-runs, then rounds of 100 new messages, each against mbsync."""
    for rep in range(args.repeat):
        steps = [
            lambda: run.add_peer("no_change_mbsync", mbsync.pull()),
            lambda: run.add_archiver("no_change_default", default.run("backup")),
        ]
        for step in steps if rep % 2 == 0 else reversed(steps):  # neither always first (server caches)
            step()
    run.facts["import_ms"], run.facts["import_modules"] = default.import_ms()
    for rep in range(args.repeat):
        fill(sandbox, generate_mailbox(100, seed=args.seed + 1000 + rep))
        steps = [
            lambda: run.add_peer("new100_mbsync", mbsync.pull()),
            lambda: run.add_archiver("new100_default", default.run("backup")),
            lambda: run.add_archiver("new100_no_index", plain.run("backup", "--no-index")),
        ]
        for step in steps if rep % 2 == 0 else reversed(steps):
            step()


def builds_and_searches(run: Run, mbsync: Mbsync, default: Archiver, work: Path, args) -> None:
    """Steps 4 and 5: every index built from scratch over the same mail, then the same searches."""
    peers = [p for p in (Mu(work / "mu", mbsync.maildir), Notmuch(work / "notmuch", mbsync.maildir)) if p.installed()]
    for _ in range(args.slow_repeat):
        run.add_archiver("reindex", default.run("reindex", "--json"))
        for peer in peers:
            run.add_peer(f"build_{peer.name}", peer.build())
    searches = {label: (queries, 20) for label, queries in QUERIES.items()}
    searches["limit 1000"] = (QUERIES[LIMIT_QUERY], 1000)
    for label, (queries, limit) in searches.items():
        key = search_key(label)
        commands = {"archiver": [*default.base, "search", "--limit", str(limit), queries[0]]}
        commands |= {peer.name: peer.search(queries[peer.column], limit) for peer in peers}
        for rep in range(args.search_runs + 1):
            for tool, command in commands.items():
                elapsed, rss, _ = run_child(command, quiet=tool == "mu")  # mu find: exit code 4 when no match
                if rep:  # the first run of each is not timed: the files are in the page cache from then on
                    run.add(f"{key}_{tool}_s", elapsed)
                    run.add(f"{key}_{tool}_peak_MB", rss / 1024)
        _, _, result = run_child([*default.base, "search", "--json", "--limit", "1", queries[0]])
        run.facts[f"{key}_archiver_hits"] = json.loads(result.stdout)["total"] if result.returncode == 0 else None
        for peer in peers:
            run.facts[f"{key}_{peer.name}_hits"] = peer.count(queries[peer.column])


def search_key(label: str) -> str:
    """``search_from``, ``search_body_word``, ``search_limit_1000``…: the figures' names for a search line."""
    return "search_" + label.replace(":", "").replace(" ", "_")


def bench_mailbox(run: Run, root: Path, count: int, args: argparse.Namespace, prefix: str = "") -> None:
    """Every step on one generated mailbox of ``count`` messages (``prefix``: the 100,000 run, step 6 only)."""
    work = root / f"run-{count}"
    shutil.rmtree(work, ignore_errors=True)
    kept = root / f"mailbox-{count}-seed{args.seed}"
    about = kept.with_suffix(".json")  # written last: the kept mailbox is complete
    with DovecotSandbox(work / "dovecot") as sandbox:
        sandbox.add_user(USER, PASSWORD)
        started = time.perf_counter()
        if args.reuse and about.exists():
            restore_mailbox(sandbox, kept)
            raw_bytes = json.loads(about.read_text())["raw_bytes"]
        else:
            _, raw_bytes = fill(sandbox, generate_mailbox(count, seed=args.seed))
            if args.dir is not None:
                about.unlink(missing_ok=True)
                shutil.rmtree(kept, ignore_errors=True)
                keep_mailbox(sandbox, kept)
                about.write_text(json.dumps({"messages": count, "raw_bytes": raw_bytes}))
        run.facts |= {f"{prefix}messages": count, f"{prefix}raw_MB": round(raw_bytes / 1e6, 1)}
        run.facts[f"{prefix}fill_s"] = round(time.perf_counter() - started, 1)
        print(f"{count} messages ({raw_bytes / 1e6:.0f} MB) in the server", file=sys.stderr, flush=True)
        mbsync, default, plain = first_backups(run, sandbox, work, args, prefix)
        if not prefix and None not in (mbsync, default, plain):
            later_runs(run, sandbox, mbsync, default, plain, args)
            builds_and_searches(run, mbsync, default, work, args)
    shutil.rmtree(work, ignore_errors=True)


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def megabytes(value: float | None, budget: int | None = None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f}" + (f" (over {budget})" if budget and value > budget else "")


def ratio(mine: float | None, theirs: float | None) -> str:
    return f"{mine / theirs:.2f}×" if mine and theirs else "–"


def table(m: dict, facts: dict, budget: int) -> list[str]:
    """The issue's table as Markdown: one line per figure, archiver against its peer of the same run."""
    mbsync = ("mbsync", "full_mbsync")
    wait = "full_wait_index" if "full_wait_index_s" in m else None
    rows = [  # label, archiver's time, its peak, the budget it is held to, peers (name, figures' prefix)
        ("full backup as a user runs it: returned (durable)", "full_default_s", "full_default", budget, mbsync),
        ("full backup: searchable (`--wait-index`)", f"{wait}_s", wait, budget, mbsync),
        ("full backup: searchable (its last process ended)", "full_default_settled_s", "full_default", budget, mbsync),
        ("full backup, `--no-index`", "full_no_index_s", "full_no_index", budget, mbsync),
        ("no-change re-run", "no_change_default_s", "no_change_default", budget, ("mbsync", "no_change_mbsync")),
        ("100 new messages, default: returned", "new100_default_s", "new100_default", budget,
         ("mbsync", "new100_mbsync")),
        ("100 new messages, default: searchable", "new100_default_settled_s", "new100_default", budget,
         ("mbsync", "new100_mbsync")),
        ("100 new messages, `--no-index`", "new100_no_index_s", "new100_no_index", budget,
         ("mbsync", "new100_mbsync")),
        ("`reindex`", "reindex_s", "reindex", None, ("mu index", "build_mu"), ("notmuch new", "build_notmuch")),
    ]  # fmt: skip
    for label in [*QUERIES, "limit 1000"]:
        key = search_key(label)
        hits = "/".join(str(facts.get(f"{key}_{tool}_hits", "–")) for tool in ("archiver", "mu", "notmuch"))
        name = "`search --limit 1000`" if label == "limit 1000" else f"`archiver search` {label}"
        rows.append((f"{name} (hits {hits})", f"{key}_archiver_s", f"{key}_archiver", None,
                     ("mu find", f"{key}_mu"), ("notmuch search", f"{key}_notmuch")))  # fmt: skip
    big = ("mbsync", "big_full_mbsync")
    rows += [
        (f"{facts.get('big_messages')} messages: full backup: returned", "big_full_default_s", "big_full_default",
         budget, big),
        (f"{facts.get('big_messages')} messages: full backup: searchable (its last process ended)",
         "big_full_default_settled_s", "big_full_default", budget, big),
    ]  # fmt: skip
    lines = [
        "| measure | archiver | archiver peak MB | peer | peer peak MB | archiver / peer |",
        "|---|---|---|---|---|---|",
    ]
    for label, mine, peak, limit, *peers in rows:
        if mine not in m:
            continue
        theirs = [(name, m.get(f"{key}_s"), m.get(f"{key}_peak_MB")) for name, key in peers if f"{key}_s" in m]
        lines.append(
            f"| {label} | {seconds(m[mine])} | {megabytes(m.get(f'{peak}_peak_MB'), limit)} | "
            + "; ".join(f"{name} {seconds(s)}" for name, s, _ in theirs)
            + " | "
            + "; ".join(megabytes(peak_mb) for _, _, peak_mb in theirs)
            + f" | {ratio(m[mine], theirs[0][1] if theirs else None)} |"
        )
    if "import_ms" in facts:
        lines.append(f"| imports of `archiver backup` (`python -X importtime`, {facts['import_modules']} modules) "
                     f"| {facts['import_ms']:.0f} ms | | | | |")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000, help="the mailbox of steps 1-5 (default 10000)")
    parser.add_argument("--big", type=int, default=100_000, help="the mailbox of step 6 (default 100000)")
    parser.add_argument("--skip-100k", action="store_true", help="leave out step 6")
    parser.add_argument("--seed", type=int, default=42, help="the generator's seed (backup_throughput.py's)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each cheap step (median)")
    parser.add_argument("--slow-repeat", type=int, default=1, help="runs of each first backup and index build")
    parser.add_argument("--search-runs", type=int, default=5, help="timed runs of each search (after one untimed)")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir, removed)")
    parser.add_argument("--reuse", action="store_true", help="with --dir: the mailbox generated by an earlier run")
    args = parser.parse_args()
    if args.reuse and args.dir is None:
        parser.error("--reuse needs --dir")
    root = args.dir or Path(tempfile.mkdtemp(prefix="bench-index-cost-"))
    root.mkdir(parents=True, exist_ok=True)
    run = Run()
    run.facts |= {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    started = time.perf_counter()
    try:
        bench_mailbox(run, root, args.messages, args)
        if not args.skip_100k:
            bench_mailbox(run, root, args.big, args, prefix="big_")
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    run.facts |= {
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "bench_s": round(time.perf_counter() - started),
    }
    medians = run.medians()
    budget = IndexConfig.memory_mb
    facts = run.facts
    print(f"\n{args.messages} messages ({facts['raw_MB']} MB); medians of {args.repeat} (first backups, index "
          f"builds: {args.slow_repeat}); peak = whole process tree; [index] memory_mb = {budget}; load average "
          f"{facts['loadavg_before']} -> {facts['loadavg_after']}, {facts['cpus']} CPUs\n")  # fmt: skip
    print("\n".join(table(medians, run.facts, budget)))
    rounded = {name: round(value, 4) for name, value in medians.items()}
    print(
        json.dumps(
            {**run.facts, **rounded, "memory_mb": budget, "repeat": args.repeat, "slow_repeat": args.slow_repeat}
        )
    )


if __name__ == "__main__":
    main()
