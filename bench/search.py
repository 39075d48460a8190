"""Search benchmark: indexing throughput, index size and query latency on a generated archive.

    python bench/search.py [--messages 100000] [--dir DIR] [--compare-procs] [--no-notmuch]

(default 10,000 messages, a few minutes; the issue's figures are at 100,000: ~15 minutes.)

1. Builds an archive directly from ``generate_mailbox`` (seeded): blobs through
   ``BlobStore.put_batch``, placements through ``Catalog.add_placements`` in a
   run, exactly what a backup does after fetching (no IMAP in the loop, so the
   figures are about indexing alone).
2. Times a full ``reindex`` (messages/s; with ``--compare-procs N`` also a
   one-process rebuild of the first N messages' archive size, to show what the
   second core buys), an incremental ``update_index`` of 1,000 new messages and
   a placement refresh of 1,000 flag changes.
3. Index size / raw message bytes.
4. p50/p95 in-process latency of typical queries (words picked from the index's
   own vocabulary so the set fits whatever the generator writes), both for the
   engine + catalog lookup and for a full result page with snippets.
5. ``notmuch new`` on the same messages written as a Maildir, if installed.

``--reuse --queries-only`` times the queries alone on an archive built before.

Targets (issue 5): reindex >= 300 msg/s, p95 <= 100 ms, index <= 0.35 x raw.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peers import Notmuch

from archiver import index
from archiver.archive import Archive
from archiver.catalog import NewPlacement
from archiver.config import ArchiveConfig
from archiver.index.analysis import query_terms
from archiver.index.writer import open_live
from archiver.mail.headers import summarize_headers


def build(archive: Archive, account: str, messages, batch: int = 500) -> tuple[int, int]:
    """Store and catalog ``messages`` (SampleMessage) as one run; returns (count, raw bytes)."""
    catalog = archive.catalog
    account_id = catalog.ensure_account(account, "imap")
    run_id = catalog.start_run(account_id)
    pending: dict[str, list] = defaultdict(list)
    uids: dict[str, int] = defaultdict(int)
    for name, record in catalog.folders(account_id).items():
        row = catalog.db.execute("SELECT COALESCE(MAX(uid), 0) FROM placements WHERE folder_id = ?", (record.id,))
        uids[name] = row.fetchone()[0]
    count = raw_bytes = 0

    def flush(folder: str) -> None:
        group = pending.pop(folder)
        record = catalog.ensure_folder(account_id, folder, "/", None, run_id)
        stored = archive.store.put_batch([m.raw for m in group])
        placements = []
        for message, blob in zip(group, stored, strict=True):
            uids[folder] += 1
            when = message.internaldate or datetime(2020, 1, 1, tzinfo=UTC)
            placements.append(
                NewPlacement(
                    uids[folder],
                    blob.blob_id,
                    tuple(message.flags),
                    when.isoformat(),
                    len(message.raw),
                    blob.stored_size,
                    summarize_headers(message.raw),
                )
            )
        catalog.add_placements(run_id, record.id, 1, placements)

    for message in messages:
        pending[message.folder].append(message)
        count += 1
        raw_bytes += len(message.raw)
        if len(pending[message.folder]) >= batch:
            flush(message.folder)
    for folder in list(pending):
        flush(folder)
    catalog.finish_run(run_id, "ok", 0, 0, 0)
    return count, raw_bytes


def pick_queries(archive: Archive, rng: random.Random) -> dict[str, str]:
    """Typical queries built from the index's own vocabulary (common word, rare word, phrase…)."""
    ix = open_live(archive.root)
    with ix.searcher() as searcher:
        reader = searcher.reader()
        docs = reader.doc_count()
        # Real words only: terms the English stemmer leaves as they are (so the query is the word itself).
        words = [
            (term.decode(), reader.doc_frequency("text_en", term))
            for term in reader.lexicon("text_en")
            if term.isalpha() and len(term) > 3 and query_terms(term.decode(), "en") == [term.decode()]
        ]
        senders = [t.decode() for t in reader.lexicon("sender") if b"." in t and b"@" not in t]
    common = max(words, key=lambda w: -abs(w[1] - docs * 0.1))[0]
    rare = rng.choice([w for w, f in words if 2 <= f <= 5] or [words[0][0]])
    second = rng.choice([w for w, f in words if docs * 0.02 <= f <= docs * 0.2] or [common])
    row = archive.catalog.db.execute("SELECT subject FROM messages WHERE subject LIKE '% % %' LIMIT 1 OFFSET 37")
    subject_words = (row.fetchone() or ["quarterly budget review"])[0].split()[:2]
    domain = rng.choice(senders) if senders else "example.org"
    return {
        "single word": common,
        "rare word": rare,
        "phrase": '"' + " ".join(subject_words) + '"',
        "from:": f"from:{domain}",
        "date range": "date:2019-03..2019-05",
        "combination": f"{second} has:attachment -is:unread",
        "sorted by date": f"{common} @date",
        "page 20": f"{common} @page20",
        "OR + folder": f"({common} OR {rare}) folder:inbox",
        "size": "size:>1M",
        "wildcard": f"{common[:4]}*",
        "is:flagged date sort": "is:flagged @date",
    }


def run_query(
    archive: Archive, spec: str, snippets: bool, accounts: index.Accounts = index.ALL_ACCOUNTS
) -> tuple[float, int, bool]:
    """(seconds, total, total is exact) of one search; ``accounts`` as a web user's visibility passes it."""
    sort = "date" if "@date" in spec else "relevance"
    page = 20 if "@page20" in spec else 1
    text = spec.replace("@date", "").replace("@page20", "").strip()
    started = time.perf_counter()
    result = index.search(archive, text, accounts=accounts, page=page, page_size=20, sort=sort, snippets=snippets)
    return time.perf_counter() - started, result.total, result.total_exact


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def queries_only(archive: Archive, repeat: int, figures: dict) -> None:
    """Time every query of :func:`pick_queries` (p50/p95 of ``repeat`` runs after one warm-up) into ``figures``."""
    queries = pick_queries(archive, random.Random(7))
    # A web user limited to one account: the query is rewritten to their own placements and filtered by owner.
    viewer = [archive.catalog.db.execute("SELECT name FROM accounts ORDER BY id LIMIT 1").fetchone()[0]]
    latencies = {}
    for label, spec in queries.items():
        first = run_query(archive, spec, snippets=False)  # the first run of the query (nothing cached for it)
        run_query(archive, spec, snippets=True)  # warm the blob caches once
        engine = [run_query(archive, spec, snippets=False) for _ in range(repeat)]
        page = [run_query(archive, spec, snippets=True)[0] for _ in range(max(5, repeat // 4))]
        times = [run[0] for run in engine]
        restricted = [run_query(archive, spec, snippets=False, accounts=viewer)[0] for _ in range(repeat)]
        latencies[label] = {
            "query": spec,
            "hits": engine[0][1],
            "hits_exact": engine[0][2],
            "first_ms": round(1000 * first[0], 1),
            "p50_ms": round(1000 * statistics.median(times), 1),
            "p95_ms": round(1000 * percentile(times, 0.95), 1),
            "with_snippets_p95_ms": round(1000 * percentile(page, 0.95), 1),
            "one_account_viewer_p95_ms": round(1000 * percentile(restricted, 0.95), 1),
        }
        hits = f"{'~' if not engine[0][2] else ''}{engine[0][1]}"
        print(f"  {label:22} {spec[:40]:40} hits {hits:>7}  first {latencies[label]['first_ms']:>6} ms  p50 "
              f"{latencies[label]['p50_ms']:>6} ms  p95 {latencies[label]['p95_ms']:>6} ms  "
              f"page+snippets p95 {latencies[label]['with_snippets_p95_ms']:>6} ms  one-account viewer p95 "
              f"{latencies[label]['one_account_viewer_p95_ms']:>6} ms", flush=True)  # fmt: skip
    figures["queries"] = latencies


def bench_notmuch(archive: Archive, work: Path) -> dict | None:
    if not Notmuch.installed():
        return None
    maildir = work / "maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for number, (blob_id, _) in enumerate(archive.catalog.iter_message_blobs()):
        (maildir / "cur" / f"{number}.bench:2,S").write_bytes(archive.store.get(blob_id, verify=False))
    notmuch = Notmuch(work / "notmuch-db", maildir)
    built = notmuch.build()
    if built is None:
        return None
    count = notmuch.count("*")
    size = sum(p.stat().st_size for p in notmuch.database.rglob("*") if p.is_file())
    return {"messages": count, "seconds": round(built[0], 1), "messages_per_second": round(count / built[0], 1),
            "db_bytes": size}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000, help="archive size (the issue's figures: 100000)")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir, removed)")
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--compare-procs", action="store_true", help="also time a one-process reindex")
    parser.add_argument("--no-notmuch", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="with --dir: keep the archive built by an earlier run")
    parser.add_argument(
        "--queries-only", action="store_true", help="with --reuse: only time the queries (no reindex, no updates)"
    )
    parser.add_argument("--repeat", type=int, default=20, help="runs per query")
    parser.add_argument(
        "--generator",
        default="archiver.devtools.sample_mail:generate_mailbox",
        help="module:function yielding SampleMessage",
    )
    args = parser.parse_args()
    module, _, function = args.generator.partition(":")
    generate_mailbox = getattr(importlib.import_module(module), function)
    figures_generator = args.generator
    work = args.dir or Path(tempfile.mkdtemp(prefix="bench-search-"))
    work.mkdir(parents=True, exist_ok=True)
    figures: dict = {"messages": args.messages, "cpus": os.cpu_count(), "generator": figures_generator}
    figures["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]  # the machine may be shared: say how busy
    try:
        with Archive(ArchiveConfig(path=work / "archive")) as archive:
            started = time.perf_counter()
            if args.reuse and archive.catalog.archive_totals()["blobs"]:
                count = archive.catalog.archive_totals()["blobs"]
            else:
                count, _ = build(archive, "bench", generate_mailbox(args.messages, seed=1))
            totals = archive.catalog.archive_totals()
            figures["build_seconds"] = round(time.perf_counter() - started, 1)
            figures["unique_messages"] = totals["blobs"]
            figures["raw_bytes"] = totals["raw_bytes"]
            print(f"built {count} messages ({totals['blobs']} unique, {totals['raw_bytes'] / 2**20:.0f} MiB raw) "
                  f"in {figures['build_seconds']} s", flush=True)  # fmt: skip

            if args.queries_only and args.reuse and count:
                queries_only(archive, args.repeat, figures)
                print(json.dumps(figures, indent=2))
                return
            if args.compare_procs:
                report = index.reindex(archive, procs=1)
                figures["reindex_1proc_per_s"] = round(report.indexed / report.seconds, 1)
                print(f"reindex, 1 process: {figures['reindex_1proc_per_s']} msg/s", flush=True)
            report = index.reindex(archive, procs=args.procs)
            figures["reindex_seconds"] = round(report.seconds, 1)
            figures["reindex_per_s"] = round(report.indexed / report.seconds, 1)
            figures["per_message_ms"] = round(1000 * report.seconds / report.indexed, 2)
            print(f"reindex, {args.procs} processes: {report.indexed} in {report.seconds:.1f} s = "
                  f"{figures['reindex_per_s']} msg/s", flush=True)  # fmt: skip
            status = index.index_status(archive)
            figures["index_bytes"] = status["bytes"]
            figures["index_ratio"] = round(status["bytes"] / totals["raw_bytes"], 4)

            extra = list(generate_mailbox(1000, seed=2 + count))  # new messages even with --reuse
            build(archive, "bench", extra)
            report = index.update_index(archive)
            figures["incremental_1000_seconds"] = round(report.seconds, 2)
            figures["incremental_per_s"] = round(report.indexed / report.seconds, 1)
            print(f"incremental: {report.indexed} new in {report.seconds:.2f} s", flush=True)

            catalog = archive.catalog
            rows = catalog.db.execute(
                "SELECT p.folder_id, p.uid FROM placements p WHERE p.flags NOT LIKE '%Flagged%' LIMIT 1000"
            ).fetchall()
            run = catalog.start_run(catalog.account_id("bench"))
            by_folder: dict[int, dict] = defaultdict(dict)
            for folder_id, uid in rows:
                by_folder[folder_id][uid] = ("\\Seen", "\\Flagged")
            for folder_id, flags in by_folder.items():
                catalog.update_flags(run, folder_id, 1, flags)
            report = index.update_index(archive)
            figures["refresh_1000_flags_seconds"] = round(report.seconds, 2)
            print(f"placement refresh: {report.refreshed} documents in {report.seconds:.2f} s", flush=True)

            queries_only(archive, args.repeat, figures)
            if not args.no_notmuch:
                figures["notmuch"] = bench_notmuch(archive, work)
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    figures["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    worst = max(q["p95_ms"] for q in figures["queries"].values())
    nm = figures.get("notmuch")
    print(json.dumps(figures, indent=2))
    print(
        f"\nreindex {figures['reindex_per_s']} msg/s (target >= 300)"
        + (f", notmuch new {nm['messages_per_second']} msg/s" if nm else "")
        + f"; worst query p95 {worst} ms (target <= 100); index/raw {figures['index_ratio']} (target <= 0.35)"
    )


if __name__ == "__main__":
    main()
