"""The memory budget of the index update a backup runs (``[index] memory_mb``).

:func:`plan_memory` turns the budget into worker processes and pool sizes; these
tests pin its choices, check that the spawned workers it picks for big budgets
index exactly what this process would, and (``test_index_memory_rss``) that the
measured peak of a whole process tree stays under the budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver import index
from archiver.archive import Archive
from archiver.config import IndexConfig, config_from_toml_text
from archiver.devtools.sample_mail import generate_mailbox
from archiver.errors import ConfigError
from archiver.index import ALL_ACCOUNTS as ALL
from archiver.index import writer as index_writer
from archiver.index.parallel import POOL_MB
from archiver.index.writer import MIN_POOL_MB, PARALLEL_FROM, plan_memory
from tests.fixtures.archives import OpenArchive, add_messages

BASE_MB = 55.0  # what `archiver backup` holds when its index update starts (measured at 10,000 messages)


def test_without_a_budget_a_large_backlog_gets_the_rebuilds_forked_workers_and_big_pools() -> None:
    plan = plan_memory(None, PARALLEL_FROM, 2, 0.0)
    assert (plan.procs, plan.pool_mb, plan.spawn, plan.budget_mb) == (2, POOL_MB, False, None)
    assert plan_memory(None, PARALLEL_FROM - 1, 2, 0.0).procs == 0


@pytest.mark.parametrize("budget", [64, 100, 150, 200, 250])
def test_a_small_budget_indexes_in_this_process_within_the_budget(budget: int) -> None:
    plan = plan_memory(budget, 10_000, 2, BASE_MB)
    assert plan.procs == 0 and not plan.spawn and plan.budget_mb == budget
    assert plan.pool_mb >= MIN_POOL_MB
    if budget >= BASE_MB + index_writer.INPROC_SLACK_MB + MIN_POOL_MB:  # else: the minimum, over budget
        assert plan.estimate_mb <= budget
    assert plan == plan_memory(budget, 100, 2, BASE_MB)  # a small backlog: the same, in this process


@pytest.mark.parametrize("budget", [400, 512, 1024])
def test_a_large_budget_spawns_workers_that_share_it(budget: int) -> None:
    plan = plan_memory(budget, 10_000, 2, BASE_MB)
    assert (plan.procs, plan.spawn) == (2, True)
    assert plan.pool_mb >= index_writer.MIN_WORKER_POOL_MB and plan.estimate_mb <= budget
    assert plan_memory(budget, 10_000, 1, BASE_MB).procs == 0  # one core: no workers
    assert plan_memory(budget, PARALLEL_FROM - 1, 2, BASE_MB).procs == 0  # too few messages to pay for them


def test_pools_grow_with_the_budget_and_shrink_with_what_this_process_holds() -> None:
    pools = [plan_memory(budget, 10_000, 2, BASE_MB).pool_mb for budget in range(130, 260, 10)]
    assert pools == sorted(pools) and pools[0] < pools[-1]
    assert plan_memory(200, 10_000, 2, 90.0).pool_mb < plan_memory(200, 10_000, 2, 50.0).pool_mb


def test_config_key_default_and_errors() -> None:
    base = '[archive]\npath = "/a"\n'
    source = Path("/etc/archiver/config.toml")
    assert config_from_toml_text(base, source).index == IndexConfig(memory_mb=150)
    assert config_from_toml_text(base + "[index]\nmemory_mb = 400\n", source).index.memory_mb == 400
    for value, found in (("10", "10"), ('"1G"', '"1G"'), ("true", "true"), ("150.5", "150.5")):
        with pytest.raises(ConfigError) as info:
            config_from_toml_text(base + f"[index]\nmemory_mb = {value}\n", source)
        assert str(info.value) == f"{source}: index.memory_mb: expected an integer of at least 64, got {found}"
    with pytest.raises(ConfigError) as info:
        config_from_toml_text(base + "[index]\nmemory = 100\n", source)
    assert str(info.value).startswith(f"{source}: index.memory: unknown key (did you mean 'memory_mb'?)")


@pytest.fixture
def two_archives(tmp_path: Path, open_archive: OpenArchive) -> Iterator[tuple[Archive, Archive]]:
    """Two archives holding the same 60 generated messages (of which a few are copies)."""
    samples = [(s.folder, s.raw, tuple(s.flags), s.internaldate) for s in generate_mailbox(60, seed=5)]
    with open_archive(tmp_path / "a") as first, open_archive(tmp_path / "b") as second:
        add_messages(first, "work", samples)
        add_messages(second, "work", samples)
        yield first, second


QUERIES = ["budget", "meeting OR report", "has:attachment", "is:unread", "folder:INBOX", '"the project"']


def _results(archive: Archive) -> dict[str, set[str]]:
    return {
        q: {h.blob_id for h in index.search(archive, q, accounts=ALL, page_size=100, snippets=False).hits}
        for q in QUERIES
    }


def test_the_update_reports_its_plan_and_spawned_workers_index_like_this_process(
    two_archives: tuple[Archive, Archive], monkeypatch: pytest.MonkeyPatch
) -> None:
    small, large = two_archives
    monkeypatch.setattr(index_writer, "PARALLEL_FROM", 10)  # a 60-message backlog counts as large
    monkeypatch.setattr(index_writer, "COMMIT_DOCS", 25)  # and commits in chunks
    unique = small.catalog.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]  # a few copies: blobs < 60
    here = index.update_index(small, procs=2, memory_mb=64)
    assert here.indexed == unique and here.plan is not None
    assert (here.plan.procs, here.plan.spawn, here.plan.budget_mb) == (0, False, 64)
    spawned = index.update_index(large, procs=2, memory_mb=1024)
    assert spawned.indexed == unique and spawned.plan is not None
    assert (spawned.plan.procs, spawned.plan.spawn) == (2, True)
    # the plan keeps base_mb rounded to the MB, so recomputing it may land one MB off
    assert abs(spawned.plan.pool_mb - plan_memory(1024, unique, 2, spawned.plan.base_mb).pool_mb) <= 1
    assert _results(small) == _results(large) and all(_results(small).values())
    assert index.index_status(small)["documents"] == index.index_status(large)["documents"] == unique
