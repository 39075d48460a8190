"""``bench/index_cost.py`` end to end on small mailboxes (``--big 40`` stands for the 100,000): every line of
issue 16's table is measured and the peers answer the same questions (the query translations hold); a mailbox
kept for ``--reuse`` comes back as it was."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from archiver.devtools.sample_mail import generate_mailbox
from archiver.devtools.sandbox import DovecotSandbox
from tests.fixtures.benches import BENCH, bench_module

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PEERS = ("dovecot", "mbsync", "mu", "notmuch")  # scripts/setup.sh installs them


def run_bench(work: Path) -> tuple[dict, str]:
    command = [sys.executable, str(BENCH / "index_cost.py"), "--messages", "60", "--big", "40", "--repeat", "1",
               "--search-runs", "1", "--dir", str(work)]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(BENCH.parent))
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1]), done.stdout


@pytest.mark.skipif(any(shutil.which(tool) is None for tool in PEERS), reason="needs " + ", ".join(PEERS))
def test_the_bench_prints_every_figure_against_its_peer(tmp_path: Path) -> None:
    figures, output = run_bench(tmp_path)
    for name in ("full_default_s", "full_default_settled_s", "full_no_index_s", "full_mbsync_s",
                 "no_change_default_s", "no_change_mbsync_s", "new100_default_s", "new100_default_settled_s",
                 "new100_no_index_s", "new100_mbsync_s", "reindex_s", "build_mu_s", "build_notmuch_s",
                 "search_limit_1000_archiver_s", "search_limit_1000_mu_s", "search_limit_1000_notmuch_s",
                 "big_full_default_s", "big_full_default_settled_s", "big_full_mbsync_s"):  # fmt: skip
        assert figures[name] > 0, name
    for phase in ("full_default", "new100_default", "reindex", "build_mu", "search_from_archiver"):
        assert figures[f"{phase}_peak_MB"] > 1, phase  # memory measured for every phase, short searches too
    assert figures["import_modules"] > 50 and figures["import_ms"] > 0
    assert not any(name.endswith("_failed") for name in figures)
    for query in ("from", "date_range"):  # translated queries: the tools find the same messages
        mine, mu, notmuch = (figures[f"search_{query}_{tool}_hits"] for tool in ("archiver", "mu", "notmuch"))
        assert mine > 0 and mine == notmuch and mine <= mu <= mine * 1.1, (query, mine, mu, notmuch)
    rows = [line.split(" | ")[0].removeprefix("| ") for line in output.splitlines() if line.startswith("| ")]
    assert rows == [
        "measure",
        "full backup as a user runs it: returned (durable)",
        *(["full backup: searchable (`--wait-index`)"] if figures["backup_has_wait_index"] else []),
        "full backup: searchable (its last process ended)",
        "full backup, `--no-index`",
        "no-change re-run",
        "100 new messages, default: returned",
        "100 new messages, default: searchable",
        "100 new messages, `--no-index`",
        "`reindex`",
        *(f"`archiver search` {label} (hits {figures[f'search_{key}_archiver_hits']}/"
          f"{figures[f'search_{key}_mu_hits']}/{figures[f'search_{key}_notmuch_hits']})"
          for label, key in (("from:", "from"), ("subject:", "subject"), ("body word", "body_word"),
                             ("date range", "date_range"))),
        f"`search --limit 1000` (hits {figures['search_limit_1000_archiver_hits']}/"
        f"{figures['search_limit_1000_mu_hits']}/{figures['search_limit_1000_notmuch_hits']})",
        "40 messages: full backup: returned",
        "40 messages: full backup: searchable (its last process ended)",
        f"imports of `archiver backup` (`python -X importtime`, {figures['import_modules']} modules)",
    ]  # fmt: skip
    assert "| `reindex` |" in output and "mu index" in output and "notmuch new" in output


@pytest.mark.skipif(shutil.which("dovecot") is None, reason="needs dovecot")
def test_a_kept_mailbox_is_laid_into_a_new_server_and_stays_as_it_was(tmp_path: Path) -> None:
    """What ``--dir D --reuse`` rests on: the same mail, and the bench's appends do not reach the kept copy."""
    mailserver = bench_module("mailserver")
    with DovecotSandbox(tmp_path / "first") as first:
        first.add_user(mailserver.USER, mailserver.PASSWORD)
        mailserver.fill(first, generate_mailbox(30, seed=5))
        before = inbox_bodies(first)
        mailserver.keep_mailbox(first, tmp_path / "kept")
    for name in ("second", "third"):
        with DovecotSandbox(tmp_path / name) as sandbox:
            sandbox.add_user(mailserver.USER, mailserver.PASSWORD)
            mailserver.restore_mailbox(sandbox, tmp_path / "kept")
            assert inbox_bodies(sandbox) == before
            mailserver.fill(sandbox, generate_mailbox(5, seed=6))  # the bench's 100 new messages
            assert len(inbox_bodies(sandbox)) > len(before)


def inbox_bodies(sandbox: DovecotSandbox) -> list[bytes]:
    return sorted(raw for raw, _flags, _date in sandbox.fetch_all("bench", None, "INBOX").values())
