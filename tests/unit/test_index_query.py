"""The query syntax and the analysis, without an index."""

from __future__ import annotations

from datetime import datetime

import pytest

from archiver.index.analysis import fold, iter_terms, query_terms
from archiver.index.query import Atom, Node, QuerySyntaxError, date_range, parse, size_range


def test_parse_precedence_and_fields() -> None:
    tree = parse('from:alice "quick fox" OR -subject:x budget')
    assert tree == Node(
        "or",
        (
            Node("and", (Atom("from", "alice"), Atom(None, "quick fox", phrase=True))),
            Node("and", (Node("not", (Atom("subject", "x"),)), Atom(None, "budget"))),
        ),
    )
    assert parse('from:"Dupré, Élodie"') == Atom("from", "Dupré, Élodie", phrase=True)


def test_parse_groups_not_and_unknown_prefixes() -> None:
    assert parse("(a OR b) NOT c") == Node(
        "and", (Node("or", (Atom(None, "a"), Atom(None, "b"))), Node("not", (Atom(None, "c"),)))
    )
    assert parse("http://example.org/x") == Atom(None, "http://example.org/x")
    assert parse('subject:"two words"') == Atom("subject", "two words", phrase=True)
    assert parse("") is None
    assert parse("a and b") == Node("and", (Atom(None, "a"), Atom(None, "and"), Atom(None, "b")))


@pytest.mark.parametrize("bad", ["(a OR b", "a )", "OR", "is:purple", "date:2021-13", "size:big"])
def test_bad_queries_say_why(bad: str) -> None:
    from archiver.index.query import compile_query

    with pytest.raises(QuerySyntaxError):
        compile_query(parse(bad))


def test_dates_and_sizes() -> None:
    assert date_range("date", "2021-03..2021-05") == (datetime(2021, 3, 1), datetime(2021, 6, 1))
    assert date_range("date", "2021") == (datetime(2021, 1, 1), datetime(2022, 1, 1))
    assert date_range("date", "2021-02-28") == (datetime(2021, 2, 28), datetime(2021, 3, 1))
    assert date_range("before", "2020-01-01") == (None, datetime(2020, 1, 1))
    assert date_range("after", "2020/01") == (datetime(2020, 1, 1), None)
    assert date_range("date", "..2020") == (None, datetime(2021, 1, 1))
    assert size_range(">5M") == (5 * 1024 * 1024 + 1, None)
    assert size_range("<100k") == (None, 100 * 1024 - 1)
    assert size_range("2kb") == (2048, None)


def test_analysis_folds_splits_and_stems() -> None:
    assert fold("Élève") == "eleve" and fold("Straße") == "strasse"
    terms = [t for t, *_ in iter_terms("Alice <alice.martin@mail.example.org>")]
    for expected in ("alice", "alice.martin@mail.example.org", "alice.martin", "example.org", "mail.example.org"):
        assert expected in terms
    assert [t for t, *_ in iter_terms("東京都")] == ["東京", "京都"]
    assert query_terms("running", "en") == ["run"] and query_terms("réunions", "fr") == ["reunion"]
    assert query_terms("alice@example.org") == ["alice@example.org"]  # a query compound stays whole
    junk = "a" * 300
    assert list(iter_terms(junk)) == []
