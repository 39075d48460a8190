"""CLI surprises: ``ls --include-gone`` shows expunged messages too; ``search --limit`` says its cap and why."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from archiver.catalog import Catalog, NewPlacement
from archiver.index.searcher import MAX_PAGE_SIZE
from archiver.mail.headers import HeaderSummary
from tests.fixtures.cli import Cli

README = Path(__file__).resolve().parents[2] / "README.md"


def _placement(uid: int, subject: str) -> NewPlacement:
    summary = HeaderSummary(f"<{uid}@x>", None, None, None, subject)
    return NewPlacement(uid, f"{uid:064x}", ("\\Seen",), f"2024-01-0{uid}T10:00:00+00:00", 10, 10, summary)


@pytest.fixture
def archive_config(tmp_path: Path, config_file: Callable[..., Path]) -> tuple[Path, int, int]:
    """Run 1 archives messages 1 and 2 in INBOX; run 2 finds message 2 expunged.  (config, run 1, run 2)"""
    path = config_file('[[accounts]]\nname = "a"\nprotocol = "local"\n')
    with Catalog.open(tmp_path / "archive") as catalog:
        account = catalog.ensure_account("a", "imap")
        run1 = catalog.start_run(account)
        inbox = catalog.ensure_folder(account, "INBOX", "/", None, run1)
        catalog.add_placements(run1, inbox.id, 1, [_placement(1, "kept"), _placement(2, "deleted on the server")])
        catalog.finish_run(run1, "ok", 1, 0, 0)
        run2 = catalog.start_run(account)
        catalog.mark_placements_gone(run2, inbox.id, 1, [2])
        catalog.finish_run(run2, "ok", 1, 0, 0)
    return path, run1, run2


def ls(cli: Cli, config: Path, *args: str):
    result = cli.invoke(config, "ls", "--account", "a", *args)
    assert result.exit_code == 0, result.output
    return result.stdout  # stderr may carry the warning about this test archive's umask-made modes


def test_ls_include_gone_lists_expunged_messages_with_when_they_went(archive_config, cli):
    config, _run1, run2 = archive_config
    (inbox,) = json.loads(ls(cli, config, "--include-gone", "--json"))["folders"]
    assert [m["uid"] for m in inbox["messages"]] == [1]
    (gone,) = inbox["expunged"]
    assert gone["uid"] == 2 and gone["subject"] == "deleted on the server" and gone["gone_since_run"] == run2
    assert gone["gone_since"] and gone["flags"] == ["\\Seen"]
    text = ls(cli, config, "--include-gone")
    assert "INBOX: 1 message(s), 10 B; 1 expunged" in text
    line = next(line for line in text.splitlines() if "deleted on the server" in line)
    assert f"[expunged: gone since run {run2}, {gone['gone_since'][:10]}]" in line


def test_ls_without_include_gone_and_as_of_before_the_expunge(archive_config, cli):
    config, run1, _run2 = archive_config
    assert "deleted on the server" not in ls(cli, config)
    (inbox,) = json.loads(ls(cli, config, "--json"))["folders"]
    assert inbox["expunged"] == [] and [m["uid"] for m in inbox["messages"]] == [1]
    (then,) = json.loads(ls(cli, config, "--run", str(run1), "--include-gone", "--json"))["folders"]
    assert [m["uid"] for m in then["messages"]] == [1, 2] and then["expunged"] == []


def test_search_limit_above_the_cap_says_why_and_what_to_do(archive_config, cli):
    config, _run1, _run2 = archive_config
    result = cli.invoke(config, "search", "--limit", "5000", "invoice")
    assert result.exit_code == 2
    error = next(line for line in result.output.splitlines() if line.startswith("Error:"))
    assert f"more than {MAX_PAGE_SIZE}" in error and "--page" in error


def test_readme_documents_the_limit_cap_and_expunged_listing():
    text = README.read_text()
    assert f"`--limit` is at most {MAX_PAGE_SIZE:,}" in text
    assert "expunged messages" in text and "--include-gone" in text
