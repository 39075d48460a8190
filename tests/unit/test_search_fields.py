"""A field that does not exist (``body:zeppelin``) says so and names the fields; a URL or a time still works."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from archiver.index import ALL_ACCOUNTS, search, update_index
from archiver.index.query import FIELDS, QuerySyntaxError, compile_query, parse
from tests.fixtures.archives import OpenArchive
from tests.fixtures.cli import Cli
from tests.fixtures.webdata import add_messages, message


@pytest.mark.parametrize(
    ("query", "named", "hint"),
    [
        ("body:zeppelin", "'body'", "a word without a field already searches the text"),
        ("foo:bar", "'foo'", "double quotes"),
        ("Subjet:x", "'Subjet'", "did you mean subject:?"),
        ("zeppelin frm:alice", "'frm'", "did you mean from:?"),
        ('-label:"to do"', "'label'", 'label:"to do"'),
    ],
)
def test_an_unknown_field_names_itself_and_the_fields_that_exist(query: str, named: str, hint: str) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse(query)
    line = str(caught.value)
    assert "\n" not in line and named in line and hint in line
    assert all(field in line for field in FIELDS)


@pytest.mark.parametrize(
    "query",
    ["http://example.org/x?a=b", "file:///tmp/x", "mailto:anna@example.org", "10:30", "Re:budget",
     "anna@example.org:25", '"foo:bar"', "note: x"],
)  # fmt: skip
def test_a_colon_that_is_plainly_not_a_field_stays_part_of_the_words(query: str) -> None:
    tree = parse(query)
    compile_query(tree)
    assert tree is not None and getattr(tree, "field", None) is None


SPACES = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0"
WORDS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=SPACES), max_size=12)


DAYS = st.builds("{}-{}-{}".format, st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32))
DATES = st.one_of(DAYS, st.builds("{}..{}".format, DAYS, DAYS), st.integers(0, 9999).map(str))


@settings(max_examples=400, deadline=None)
@given(left=st.one_of(WORDS, st.sampled_from(sorted(FIELDS))), right=st.one_of(WORDS, DATES))
@example(left="date", right="9999-12-31")  # the day after is past datetime's range
@example(left="before", right="9999-12")
def test_any_word_colon_word_parses_or_raises_only_a_query_syntax_error(left: str, right: str) -> None:
    try:
        compile_query(parse(f"{left}:{right}"))
    except QuerySyntaxError as exc:
        assert str(exc) and "\n" not in str(exc)


@pytest.fixture
def indexed_config(config_file: Callable[..., Path], open_archive: OpenArchive) -> Path:
    """An archive with one indexed message about a zeppelin."""
    config = config_file('[[accounts]]\nname = "a"\nprotocol = "local"\n')
    with open_archive(config) as archive:
        add_messages(archive, "a", "INBOX", [message("airships", "the zeppelin lands at 10:30", n=1)])
        update_index(archive)
        # The word is there: only the field is wrong.
        assert search(archive, "zeppelin", accounts=ALL_ACCOUNTS).total == 1
    return config


def test_cli_search_with_an_unknown_field_is_one_line_and_a_usage_exit(indexed_config: Path, cli: Cli) -> None:
    result = cli.invoke(indexed_config, "search", "body:zeppelin")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "body" in line]
    assert len(lines) == 1 and lines[0].startswith("archiver: error: unknown search field 'body'")
    assert "subject" in lines[0]
    assert "Traceback" not in result.output
    assert cli.invoke(indexed_config, "search", "10:30").exit_code == 0


def test_web_search_page_shows_the_hint(root) -> None:
    response = root.get("/search?q=Subjet:hello")
    page = response.get_data(as_text=True)
    assert 'class="error"' in page and "unknown search field" in page and "did you mean subject:?" in page
