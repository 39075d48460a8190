"""p50/p95 latency of the folder page and the message page on one big folder.

The archive is built through the real code paths (BlobStore.put_batch, then
Catalog.add_placements, as a backup's batches do); pages are fetched through
the real Flask app (test client, so the figures are the app's own time, no
network).  Keyset pagination should keep page 1,000 as fast as page 1; the
baseline printed beside it is page 1 in the same run.  "as-of" is the same page
with the date picker set (the folder as it stood after a given run).

    python bench/web_latency.py [--messages 100000] [--samples 30] [--dir DIR]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from argon2 import PasswordHasher

from archiver.archive import Archive
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
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
