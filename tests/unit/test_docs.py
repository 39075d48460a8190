"""Keep the manual true: every config key, command and option documented; every link leads somewhere.

As datasette's ``tests/test_docs.py`` does, the lists come from the code, not from a copy of it:

* config keys from the reader's own schema, ``archiver.config.KEYS_BY_TABLE`` (every table and
  the keys it accepts; the reader takes each table's keys from it and from nowhere else) and
  ``ARRAY_TABLES`` (those written ``[[name]]``);
* commands from the ``archiver`` entry point in ``pyproject.toml``, walked with click's own
  ``list_commands``/``get_command`` (so lazily loaded commands count, wherever their modules live).

Each check is also run once against a copy of the docs with something removed, so a check that
could no longer fail would fail here.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from archiver.config import ARRAY_TABLES, KEYS_BY_TABLE

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIG_PAGE = DOCS / "configuration.md"
COMMANDS_PAGE = DOCS / "commands.md"

# -- markdown ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """A heading and the text under it up to the next heading of any level."""

    level: int
    title: str
    body: str


def _prose_lines(text: str) -> Iterator[tuple[bool, str]]:
    """Each line with whether it is inside a fenced code block (headings and links there do not count)."""
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            yield True, line
            continue
        yield fenced, line


def sections(text: str) -> list[Section]:
    found: list[Section] = []
    level, title, body = 0, "", []
    for fenced, line in _prose_lines(text):
        heading = None if fenced else re.match(r"(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if heading:
            found.append(Section(level, title, "\n".join(body)))
            level, title, body = len(heading.group(1)), heading.group(2), []
        else:
            body.append(line)
    found.append(Section(level, title, "\n".join(body)))
    return found


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for section in sections(text)[1:]:
        base = slug(section.title)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(text: str) -> Iterator[str]:
    """Targets of inline links and images outside code (code spans are blanked first)."""
    for fenced, line in _prose_lines(text):
        if fenced:
            continue
        line = re.sub(r"`[^`]*`", "code", line)
        yield from (m.group(1) for m in re.finditer(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line))


def table_rows(body: str) -> Iterator[list[str]]:
    """The cells of each markdown table row (header and separator rows included)."""
    for line in body.splitlines():
        if line.startswith("|"):
            yield [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def doc_pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


# -- config keys, from the reader --------------------------------------------------------------


@dataclass(frozen=True)
class ConfigTable:
    path: str  # dotted, without array indexes: "", "archive", "accounts.folders", "web.users"
    array: bool  # [[path]] rather than [path]
    keys: tuple[str, ...]

    @property
    def heading(self) -> str:
        return f"[[{self.path}]]" if self.array else f"[{self.path}]"


def config_tables() -> list[ConfigTable]:
    """Every table the config reader accepts, with its keys, from the schema the reader reads them from."""
    return [ConfigTable(path, path in ARRAY_TABLES, keys) for path, keys in KEYS_BY_TABLE.items()]


@pytest.fixture(scope="module")
def tables() -> list[ConfigTable]:
    return config_tables()


def documented_keys(page: str) -> dict[str, tuple[bool, set[str]]]:
    """Per table heading of the config page: whether it is an array table, and the keys of its rows."""
    result: dict[str, tuple[bool, set[str]]] = {}
    for section in sections(page):
        heading = re.search(r"(\[\[?)([A-Za-z0-9_.]+)\]\]?", section.title)
        if not heading:
            continue
        keys = {name for row in table_rows(section.body) for name in re.findall(r"`([a-z][a-z0-9_]*)`", row[0])}
        result[heading.group(2)] = (heading.group(1) == "[[", keys)
    return result


def config_doc_problems(tables: list[ConfigTable], page: str) -> list[str]:
    documented = documented_keys(page)
    problems = []
    for table in tables:
        if not table.path:  # the top level: each of its keys is a table with its own section
            continue
        if table.path not in documented:
            problems.append(f"{table.heading}: no section with this heading")
            continue
        array, keys = documented[table.path]
        if array != table.array:
            problems.append(f"{table.heading}: its heading should say {table.heading}")
        problems += [f"{table.heading} {key}: not documented" for key in table.keys if key not in keys]
        stale = sorted(keys - set(table.keys))
        problems += [f"{table.heading} {key}: documented, but the reader has no such key" for key in stale]
    known = {t.path for t in tables}
    top = next(t for t in tables if not t.path)
    problems += [f"{key}: a top-level key that is no table, document it" for key in top.keys if key not in known]
    problems += [f"[{path}]: documented, but the reader has no such table" for path in documented if path not in known]
    return problems


def test_the_schema_holds_every_table_the_reader_knows(tables: list[ConfigTable]) -> None:
    by_path = {t.path: t for t in tables}
    assert {"archive", "accounts", "accounts.folders", "web", "web.users", "alerts", "alerts.email"} <= set(by_path)
    assert "max_message_bytes" in by_path["archive"].keys and by_path["accounts"].array
    assert "password_command" in by_path["alerts.email"].keys and not by_path["alerts.email"].array


def test_every_config_key_is_documented(tables: list[ConfigTable]) -> None:
    assert config_doc_problems(tables, CONFIG_PAGE.read_text()) == []


def test_a_key_missing_from_the_config_page_is_reported(tables: list[ConfigTable]) -> None:
    page = CONFIG_PAGE.read_text()
    without = "\n".join(line for line in page.splitlines() if not line.startswith("| `max_message_bytes` |"))
    assert without != page
    assert config_doc_problems(tables, without) == ["[archive] max_message_bytes: not documented"]


# -- commands, from the click group ------------------------------------------------------------


def entry_point() -> click.Group:
    """The group the ``archiver`` script runs, as pyproject.toml declares it."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attribute = scripts["archiver"].partition(":")
    group = getattr(importlib.import_module(module), attribute)
    assert isinstance(group, click.Group)
    return group


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command and subcommand below ``group``, through click's own API (lazy loading included)."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"archiver {' '.join((*path, name))}: listed but does not load"
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


def option_names(command: click.Command) -> Iterator[tuple[str, ...]]:
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            names = tuple(n for n in (*param.opts, *param.secondary_opts) if n not in ("-h", "--help"))
            if names:
                yield names


def _mentions(text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def command_doc_problems(group: click.Group, pages: dict[str, str], readme: str) -> list[str]:
    everything = [s for text in pages.values() for s in sections(text)]
    command_table = next(s.body for s in sections(readme) if s.title == "Commands")
    readme_rows = [row[0] for row in table_rows(command_table)]
    problems = []
    for path, command in commands(group):
        name = "archiver " + " ".join(path)
        pattern = re.compile(rf"`{re.escape(name)}(?![\w-])")
        documenting = [s for s in everything if pattern.search(s.title)]
        if not documenting:
            problems.append(f"{name}: no heading in docs/ names it")
        if isinstance(command, click.Group):
            continue
        if not any(f"`{name}`" in cell for cell in readme_rows):
            problems.append(f"{name}: not in the README's command table")
        text = "\n".join(s.body for s in documenting)
        for names in option_names(command):
            if documenting and not any(_mentions(text, n) for n in names):
                problems.append(f"{name} {names[0]}: not documented under the command's heading")
    global_options = "\n".join(s.body for s in sections(pages["commands.md"]) if s.title == "Global options")
    for names in option_names(group):
        if not any(_mentions(global_options, n) for n in names):
            problems.append(f"archiver {names[0]}: not in docs/commands.md's Global options")
    return problems


@pytest.fixture(scope="module")
def docs_text() -> dict[str, str]:
    return {page.name: page.read_text() for page in sorted(DOCS.glob("*.md"))}


def test_every_command_and_option_is_documented(docs_text: dict[str, str]) -> None:
    assert command_doc_problems(entry_point(), docs_text, README.read_text()) == []


def test_the_command_walk_reaches_subcommands_and_lazy_commands() -> None:
    found = {path for path, _ in commands(entry_point())}
    assert {("backup",), ("search",), ("sessions",), ("sessions", "revoke")} <= found


def test_a_command_or_option_missing_from_the_docs_is_reported(docs_text: dict[str, str]) -> None:
    pages = dict(docs_text)
    pages["search.md"] = pages["search.md"].replace("## `archiver reindex`", "## Rebuilding")
    pages["web.md"] = pages["web.md"].replace("--threads", "--thread-count")
    readme = "\n".join(line for line in README.read_text().splitlines() if "`archiver verify`" not in line)
    assert command_doc_problems(entry_point(), pages, readme) == [
        "archiver reindex: no heading in docs/ names it",
        "archiver serve --threads: not documented under the command's heading",
        "archiver verify: not in the README's command table",
    ]


# -- links ---------------------------------------------------------------------------------------


def link_problems(page: Path, text: str) -> list[str]:
    problems = []
    for target in links(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        where, _, anchor = target.partition("#")
        resolved = (page.parent / where).resolve() if where else page
        shown = f"{page.relative_to(ROOT)}: {target}"
        if not resolved.is_relative_to(ROOT):
            problems.append(f"{shown}: leads out of the repository")
        elif not resolved.exists():
            problems.append(f"{shown}: no such file")
        elif anchor:
            if resolved.suffix != ".md":
                problems.append(f"{shown}: an anchor into a file that is not markdown")
            elif anchor not in anchors(text if resolved == page else resolved.read_text()):
                problems.append(f"{shown}: no heading with this anchor")
    return problems


def test_every_relative_link_and_anchor_resolves() -> None:
    problems = [problem for page in doc_pages() for problem in link_problems(page, page.read_text())]
    assert problems == []


def test_a_broken_link_or_anchor_is_reported() -> None:
    page = DOCS / "index.md"
    text = "[a](configuration.md#no-such-key) [b](missing.md) [c](#commands) [d](commands.md#exit-codes)"
    assert link_problems(page, text) == [
        "docs/index.md: configuration.md#no-such-key: no heading with this anchor",
        "docs/index.md: missing.md: no such file",
        "docs/index.md: #commands: no heading with this anchor",
    ]


_REPO_PATH = re.compile(r"`((?:archiver|web|tests|bench|scripts|systemd)/[\w./-]*)`")
_CODE_NAME = re.compile(r"`(archiver(?:\.\w+){2,})`")  # archiver.pkg.name: one dot would be archiver.service


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True
    return False


def code_reference_problems(page: Path, text: str) -> list[str]:
    """Files and names of the code that the prose points at, which a move or rename would leave behind."""
    shown = page.relative_to(ROOT)
    missing = [path for path in _REPO_PATH.findall(text) if not (ROOT / path).exists()]
    unknown = [name for name in _CODE_NAME.findall(text) if not _resolves(name)]
    return [f"{shown}: `{path}`: no such file or directory in the repository" for path in missing] + [
        f"{shown}: `{name}`: no such module or name" for name in unknown
    ]


def test_code_the_docs_point_at_exists() -> None:
    problems = [problem for page in doc_pages() for problem in code_reference_problems(page, page.read_text())]
    assert problems == []


def test_a_stale_code_reference_is_reported() -> None:
    text = "see `archiver/no_such_module.py`, `archiver.index.no_such_name`, `archiver/index/` and `archiver.service`"
    assert code_reference_problems(DOCS / "index.md", text) == [
        "docs/index.md: `archiver/no_such_module.py`: no such file or directory in the repository",
        "docs/index.md: `archiver.index.no_such_name`: no such module or name",
    ]


def test_every_docs_page_is_linked_from_the_index() -> None:
    index = set(links((DOCS / "index.md").read_text()))
    assert sorted(p.name for p in DOCS.glob("*.md") if p.name != "index.md" and p.name not in index) == []


def test_the_readme_stays_short() -> None:
    assert len(README.read_text().splitlines()) <= 160
