"""``bench/index_cost.py`` end to end on small mailboxes (``--big 40`` stands for the 100,000): every line of
issue 16's table is measured, the peers answer the same questions (the query translations hold), and a re-run
with ``--reuse`` skips the generation."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.benches import BENCH

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PEERS = ("dovecot", "mbsync", "mu", "notmuch")  # scripts/setup.sh installs them


def run_bench(work: Path, *extra: str) -> tuple[dict, str]:
    command = [sys.executable, str(BENCH / "index_cost.py"), "--messages", "60", "--big", "40", "--repeat", "1",
               "--search-runs", "1", "--dir", str(work), *extra]  # fmt: skip
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
    assert output.count("\n| ") >= 18  # header, rule and 16 lines of figures
    assert figures["big_messages"] == 40 and "| 40 messages: full backup: returned |" in output
    assert "| `reindex` |" in output and "mu index" in output and "notmuch new" in output

    kept = json.loads((tmp_path / "mailbox-60-seed42.json").read_text())
    again, _ = run_bench(tmp_path, "--reuse")
    assert again["raw_MB"] == figures["raw_MB"] == round(kept["raw_bytes"] / 1e6, 1)
    assert again["fill_s"] < figures["fill_s"]
    assert again["search_from_archiver_hits"] == figures["search_from_archiver_hits"]  # the same mailbox
