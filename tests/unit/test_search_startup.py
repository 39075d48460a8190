"""``archiver search`` starts lean: the query path imports none of what backups, the daemon or the web UI need.

A search is a whole process each time (as ``mu find`` and ``notmuch search`` are), so what it imports is most
of what it costs.  These tests run the real command in a child process under ``python -X importtime`` and look
at the modules it imported: a behaviour (which code a search runs), not a timing.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from archiver import index
from archiver.archive import Archive
from tests.fixtures.archives import add_messages
from tests.fixtures.cli import Cli

#: A config as an appliance has it: a scheduled account whose password comes from a command.
ACCOUNT = """
[[accounts]]
name = "work"
protocol = "imap"
host = "mail.example.org"
username = "alice"
password_command = "pass show mail/work"
schedule = "0 */4 * * 1-5"
"""
SCHEDULER = '[scheduler]\ndefault_schedule = "@daily"\n'

#: Top-level packages (and modules) no search needs: the scheduler, OAuth2 and discovery clients, the web UI,
#: the mail parser (results come from the catalog), the indexing code, worker processes, asyncio, HTTP, what
#: Whoosh imports for features we do not use, and the typo suggester (only for a mistyped key or field).
NOT_FOR_A_SEARCH = (
    "apscheduler",
    "cached_property",
    "urllib.request",
    "http",
    "ssl",
    "difflib",
    "whoosh.lang.morph_en",
    "authlib",
    "requests",
    "dns",
    "flask",
    "web",
    "email",
    "asyncio",
    "multiprocessing",
    "importlib.metadata",
    "subprocess",
    "archiver.mail",
    "archiver.index.writer",
    "archiver.index.documents",
    "archiver.secret_io",
    "archiver.discovery.presets",
)


def imported(cli: Cli, config: Path, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """The run of ``archiver search args…`` and the modules it imported (from ``-X importtime``)."""
    argv = cli.command(config, "search", *args)
    result = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True, timeout=120)
    modules = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    return result, modules


def unwanted(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == name or m.startswith(name + ".") for name in NOT_FOR_A_SEARCH))


@pytest.fixture
def searchable(archive: Archive, config_file: Callable[..., Path]) -> Path:
    """A config (scheduled account, password command) whose archive holds two indexed messages."""
    messages = [
        ("INBOX", b"From: ann@example.org\r\nSubject: zeppelin tour\r\n\r\nThe airship leaves at noon.\r\n", (), None),
        ("INBOX", b"From: bob@example.org\r\nSubject: lunch\r\n\r\nSoup, then a zeppelin ride.\r\n", (), None),
    ]
    add_messages(archive, "work", messages)
    index.update_index(archive)
    return config_file(ACCOUNT, extra=SCHEDULER)


def test_a_search_imports_nothing_it_does_not_use(searchable: Path, cli: Cli) -> None:
    result, modules = imported(cli, searchable, "--json", "zeppelin")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["total"] == 2  # it did search: the index and the catalog were read
    assert "whoosh.searching" in modules and "archiver.catalog" in modules
    assert unwanted(modules) == []


def test_snippets_bring_the_mail_parser_only_when_asked(searchable: Path, cli: Cli) -> None:
    result, modules = imported(cli, searchable, "--json", "--snippets", "airship")
    assert result.returncode == 0, result.stderr[-2000:]
    (hit,) = json.loads(result.stdout)["hits"]
    assert "<mark>airship</mark>" in hit["snippet_html"]
    assert "archiver.mail.textextract" in modules and "email" in modules  # the check above can see them
