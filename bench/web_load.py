"""The web UI under concurrent users: an archive of several accounts, ``archiver serve`` as users run it, clients.

Used by ``bench/web_latency.py --clients N``.  The archive is built once
(blobs through ``BlobStore.put_batch`` and placements through
``Catalog.add_placements``, as a backup's batches do; then ``reindex``) and
reused with ``--dir``.  The server is the real command (``python -m archiver
serve``, waitress, its default threads) in a child process, started from
each ``--tree`` in turn so two versions of the code are compared in the same
run, interleaved.  Every client is a logged-in user with their own accounts
(one in five sees two, one is an administrator who sees all), on its own
HTTP connection, asking for the next page as soon as the last one arrived.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import requests
from argon2 import PasswordHasher
from search import build  # bench/search.py (this directory is on sys.path): the search bench's archive builder

from archiver import index
from archiver.archive import Archive
from archiver.config import ArchiveConfig
from archiver.devtools.sample_mail import generate_mailbox
from archiver.index.analysis import query_terms
from archiver.index.writer import open_live

PASSWORD = "bench-password"


@dataclass
class Sample:
    """What one phase measured: latency (s) and kind of each request, errors, the server's CPU seconds."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    server_cpu: float = 0.0

    def add(self, kind: str, latency: float) -> None:
        self.latencies.setdefault(kind, []).append(latency)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def account_names(count: int) -> list[str]:
    return [f"acct{k}" for k in range(count)]


def build_archive(root: Path, messages: int, accounts: int) -> None:
    """``messages`` generated messages split over ``accounts`` accounts (a mailbox of its own each), indexed."""
    with Archive(ArchiveConfig(path=root / "archive")) as archive:
        if archive.catalog.archive_totals()["blobs"]:
            print(f"reusing the archive at {root} ({archive.catalog.archive_totals()['blobs']} messages)")
            return
        started = time.perf_counter()
        for k, name in enumerate(account_names(accounts)):
            build(archive, name, generate_mailbox(messages // accounts, seed=100 + k))
        built = time.perf_counter() - started
        report = index.reindex(archive)
        print(f"built {messages} messages in {accounts} accounts in {built:.0f} s, indexed in {report.seconds:.0f} s")


def write_config(root: Path, accounts: int, users: int, extra_accounts: str = "") -> Path:
    """The server's config: the accounts (never contacted), ``users`` web users, each seeing their own accounts."""
    names = account_names(accounts)
    hashed = PasswordHasher().hash(PASSWORD)
    text = f'[archive]\npath = "{root / "archive"}"\n'
    for name in names:
        text += f'[[accounts]]\nname = "{name}"\nprotocol = "local"\n'
    text += extra_accounts
    for n in range(users):
        sees = [names[n % accounts]] + ([names[(n + 1) % accounts]] if n % 5 == 4 else [])
        admin = "true" if n == 0 else "false"
        text += (
            f'[[web.users]]\nname = "u{n:02d}"\npassword_hash = "{hashed}"\nadmin = {admin}\n'
            f"accounts = [{', '.join(repr(a).replace(chr(39), chr(34)) for a in sees)}]\n"
        )
    path = root / "archiver.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def user_accounts(n: int, accounts: int) -> list[str]:
    names = account_names(accounts)
    if n == 0:
        return names
    return [names[n % accounts]] + ([names[(n + 1) % accounts]] if n % 5 == 4 else [])


def search_pool(root: Path, rng: random.Random, count: int = 600) -> list[str]:
    """``count`` query strings a user would type, from the index's vocabulary: words, from:, phrases, dates, page 2.

    Many, so that most searches of a phase are new to the server (its caches of
    texts and excerpts then help only as much as real users' result pages overlap).
    """
    ix = open_live(root / "archive")
    with ix.searcher() as searcher:
        reader = searcher.reader()
        docs = reader.doc_count()
        words = [
            (term.decode(), reader.doc_frequency("text_en", term))
            for term in reader.lexicon("text_en")
            if term.isalpha() and len(term) > 3 and query_terms(term.decode(), "en") == [term.decode()]
        ]
        subjects = [t.decode() for t in reader.lexicon("subject") if t.isalpha() and len(t) > 3]
        senders = [t.decode() for t in reader.lexicon("sender") if t.isalpha() and len(t) > 3]
    common = [w for w, f in words if f >= docs * 0.05] or [words[0][0]]
    middle = [w for w, f in words if docs * 0.002 <= f < docs * 0.05] or common
    rare = [w for w, f in words if 1 <= f < docs * 0.002] or middle
    pool: list[str] = []
    for _ in range(count // 10):
        pool.append(f"q={rng.choice(common)}")
        pool.append(f"q={rng.choice(middle)}")
        pool.append(f"q={rng.choice(rare)}")
        pool.append(f"q={rng.choice(middle)}+{rng.choice(common)}")
        pool.append(f"q=from:{rng.choice(senders)}")
        pool.append("q=" + urllib.parse.quote(f'"{rng.choice(subjects)} {rng.choice(subjects)}"'))
        pool.append("q=" + urllib.parse.quote(f'"{" ".join(rng.sample(common, 2))}"'))
        year = rng.randint(2015, 2024)
        pool.append(f"q={rng.choice(middle)}&after={year}-01-01&before={year}-06-30")
        pool.append(f"q=date:{year}-{rng.randint(1, 12):02d}")
        pool.append(f"q={rng.choice(common)}&page=2")
    return pool


def browse_pool(root: Path, accounts: list[str], rng: random.Random) -> list[str]:
    """Pages a user of ``accounts`` would open: the account list, folder lists, folder pages (1 and 3), messages."""
    urls = ["/"]
    with Archive(ArchiveConfig(path=root / "archive"), readonly=True) as archive:
        catalog = archive.catalog
        for name in accounts:
            account_id = catalog.account_id(name)
            if account_id is None:
                continue
            urls.append(f"/a/{name}")
            folders = [row["id"] for row in catalog.web_folders(account_id)]
            for folder_id in rng.sample(folders, min(6, len(folders))):
                urls.append(f"/f/{folder_id}")
                rows = catalog.web_folder_page(folder_id, before=None, limit=101)
                if len(rows) > 100:
                    last = rows[99]
                    cursor = urllib.parse.quote(f"{last['internaldate']}|{last['id']}")
                    urls.append(f"/f/{folder_id}?before={cursor}")
                urls.extend(f"/m/{row['id']}" for row in rng.sample(list(rows), min(5, len(rows))))
    return urls


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``python -m archiver serve`` from the source tree ``tree``, on a free loopback port; stopped by its pid."""

    def __init__(self, tree: Path, config: Path, log: Path, threads: int | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=str(tree))
        command = [sys.executable, "-m", "archiver", "--config", str(config), "serve"]
        command += ["--threads", str(threads)] if threads else []
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [*command, "--listen", f"127.0.0.1:{self.port}"], env=env, stdout=self.log, stderr=self.log, cwd=tree
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server from {tree} exited {self.process.returncode}: see {log}")
            try:
                requests.get(self.base + "/login", timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit(f"the server from {tree} did not answer in 60 s: see {log}")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def login(base: str, user: str) -> requests.Session:
    session = requests.Session()
    page = session.get(base + "/login", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    response = session.post(
        base + "/login", data={"username": user, "password": PASSWORD, "csrf_token": token}, timeout=30
    )
    if response.status_code != 200 or "/login" in response.url:
        raise SystemExit(f"{user} cannot log in: {response.status_code}")
    return session


@dataclass(frozen=True)
class Client:
    """One user: their session and what they ask for (search query strings and browse paths)."""

    name: str
    session: requests.Session
    searches: list[str]
    browses: list[str]


def run_clients(base: str, clients: list[Client], mix: str, seconds: float, sample: Sample, until=None) -> None:
    """Every client asks for page after page for ``seconds`` (or until ``until()`` is true)."""
    deadline = time.monotonic() + seconds
    lock = threading.Lock()

    def done() -> bool:
        return until() if until is not None else time.monotonic() >= deadline

    def one(client: Client, seed: int) -> None:
        rng = random.Random(seed)
        while not done():
            kind = mix if mix != "both" else rng.choice(("search", "browse"))
            url = "/search?" + rng.choice(client.searches) if kind == "search" else rng.choice(client.browses)
            started = time.perf_counter()
            try:
                response = client.session.get(base + url, timeout=60)
                problem = None if response.status_code == 200 else f"{response.status_code} {url}"
                if problem is None and kind == "search" and 'class="error"' in response.text:
                    problem = f"search error {url}: {re.search(r'role=.alert.>([^<]*)', response.text)}"
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__} {url}"
            latency = time.perf_counter() - started
            with lock:
                sample.add(kind, latency)
                if problem:
                    sample.errors.append(f"{client.name}: {problem}")

    threads = [threading.Thread(target=one, args=(c, n)) for n, c in enumerate(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sample.seconds = time.perf_counter() - started


def make_clients(base: str, root: Path, count: int, accounts: int, rng: random.Random, pools: dict) -> list[Client]:
    clients = []
    for n in range(count):
        sees = tuple(user_accounts(n, accounts))
        if sees not in pools:
            pools[sees] = browse_pool(root, list(sees), random.Random(hash(sees) & 0xFFFF))
        clients.append(Client(f"u{n:02d}", login(base, f"u{n:02d}"), pools["search"], pools[sees]))
    return clients


def summary(label: str, sample: Sample) -> dict:
    """One line per kind of request: req/s, p50, p95, p99 (ms), errors; returned as figures too."""
    figures = {}
    for kind, values in sorted(sample.latencies.items()):
        ms = [1000 * v for v in values]
        figures[kind] = {
            "requests": len(ms),
            "per_s": round(len(ms) / sample.seconds, 1),
            "p50_ms": round(percentile(ms, 50)),
            "p95_ms": round(percentile(ms, 95)),
            "p99_ms": round(percentile(ms, 99)),
        }
        f = figures[kind]
        print(
            f"  {label:28} {kind:7} {f['per_s']:>7.1f} req/s  p50 {f['p50_ms']:>6} ms  p95 {f['p95_ms']:>6} ms  "
            f"p99 {f['p99_ms']:>6} ms  ({f['requests']} requests)",
            flush=True,
        )
    total = sum(len(v) for v in sample.latencies.values())
    cpu = 1000 * sample.server_cpu / total if total else 0.0
    print(f"  {label:28} errors {len(sample.errors)}; server CPU {cpu:.0f} ms/request", flush=True)
    for line in sample.errors[:5]:
        print(f"    {line}")
    figures["errors"] = len(sample.errors)
    figures["server_cpu_ms_per_request"] = round(cpu, 1)
    return figures
