"""The fast paths (fastmatch, fastwrite) give exactly what Whoosh's own code gives."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from whoosh import index as whoosh_index
from whoosh import query as wq
from whoosh.fields import TEXT
from whoosh.index import FileIndex
from whoosh.writing import SegmentWriter

from archiver.devtools.sample_mail import generate_mailbox
from archiver.index.analysis import _stemmers, iter_terms, term_positions
from archiver.index.documents import CatalogMessage, document_from_text, make_schema
from archiver.index.fastmatch import FastPhrase, matching_docs, newest, rank
from archiver.index.fastwrite import FastSegmentWriter
from archiver.index.query import compile_query, parse
from archiver.mail.textextract import extract


@pytest.fixture(scope="module")
def documents() -> list[dict]:
    docs = []
    for number, message in enumerate(generate_mailbox(240, seed=11)):
        placements = (("acct", message.folder, " ".join(message.flags), None),)
        catalog_message = CatalogMessage(number + 1, f"{number:064x}", len(message.raw), placements)
        docs.append(document_from_text(catalog_message, extract(message.raw)))
    return docs


def _build(path: Path, documents: list[dict], fast: bool, segments: int = 3) -> FileIndex:
    schema = make_schema()
    if not fast:  # Whoosh's own Positions format for the phrase fields
        for name in ("subject", "text_en", "text_fr"):
            analyzer = schema[name].analyzer
            schema.remove(name)
            schema.add(name, TEXT(analyzer=analyzer, phrase=True))
    path.mkdir()
    ix = whoosh_index.create_in(str(path), schema)
    size = -(-len(documents) // segments)
    for start in range(0, len(documents), size):
        writer = (FastSegmentWriter if fast else SegmentWriter)(ix)
        for document in documents[start : start + size]:
            writer.add_document(**document)
        writer.commit(merge=False)
    return ix


def _postings(ix: FileIndex) -> dict:
    out: dict = {}
    with ix.searcher() as searcher:
        for leaf, offset in searcher.leaf_searchers():
            reader = leaf.reader()
            for field, term in reader.all_terms():
                info = reader.term_info(field, term)
                items = list(reader.postings(field, term).all_items())
                out[(offset, field, term)] = (items, info.max_weight(), info.min_length(), info.max_length())
            for docnum in range(reader.doc_count_all()):
                for field in ("text_en", "text_fr", "subject", "sender"):
                    out[(offset, "length", docnum, field)] = reader.doc_field_length(docnum, field)
    return out


def test_fast_writer_writes_the_same_postings_as_whoosh(tmp_path: Path, documents: list[dict]) -> None:
    fast = _postings(_build(tmp_path / "fast", documents, True))
    assert fast == _postings(_build(tmp_path / "plain", documents, False))


@pytest.fixture(scope="module")
def ix(tmp_path_factory: pytest.TempPathFactory, documents: list[dict]) -> Iterator[FileIndex]:
    index = _build(tmp_path_factory.mktemp("fast") / "ix", documents, True)
    writer = index.writer()  # deletions must be honoured
    for document in documents[::17]:
        writer.delete_by_term("blob_id", document["blob_id"])
    writer.commit(merge=False)
    yield index


def _phrases(documents: list[dict], count: int) -> list[list[str]]:
    from archiver.index.analysis import query_terms

    rng = random.Random(3)
    phrases = []
    while len(phrases) < count:
        words = rng.choice(documents).get("text_en", "").split()
        if len(words) < 4:
            continue
        at = rng.randrange(len(words) - 3)
        terms = [t for w in words[at : at + rng.choice((2, 2, 3))] for t in query_terms(w, "en")]
        if len(terms) >= 2:
            phrases.append(terms)
    phrases.append(["nosuchword", "budget"])
    return phrases


def test_fast_phrase_matches_whoosh_phrase(ix: FileIndex, documents: list[dict]) -> None:
    found_some = 0
    with ix.searcher() as searcher:
        for terms in _phrases(documents, 40):
            expected = set(searcher.docs_for_query(wq.Phrase("text_en", terms)))
            got = set(searcher.docs_for_query(FastPhrase("text_en", terms)))
            assert got == expected, terms
            assert matching_docs(searcher, FastPhrase("text_en", terms)) == expected, terms
            found_some += bool(expected)
    assert found_some >= 30


@pytest.mark.parametrize(
    "text",
    [
        "budget",
        "budget review",
        '"quarterly report"',
        "budget OR nosuchword",
        "budget -review",
        "NOT budget",
        "date:2019-03..2019-05",
        "size:>100k",
        "bud*",
        "has:attachment is:flagged",
        "from:example.org (budget OR meeting) -is:unread",
        "",
    ],
)
def test_matching_docs_counts_what_whoosh_matches(ix: FileIndex, text: str) -> None:
    query = compile_query(parse(text))
    with ix.searcher() as searcher:
        expected = set(searcher.docs_for_query(query))
        assert matching_docs(searcher, query) == expected


@pytest.mark.parametrize("text", ["budget", "budget review", "bud*", '"quarterly report"', "meeting -review"])
def test_rank_orders_and_scores_like_whoosh(ix: FileIndex, text: str) -> None:
    query = compile_query(parse(text))
    with ix.searcher() as searcher:
        expected = [(hit.docnum, hit.score) for hit in searcher.search(query, limit=30, terms=False)]
        got = rank(searcher, query, matching_docs(searcher, query) or set(), 30)
    assert [docnum for docnum, _ in got] == [docnum for docnum, _ in expected]
    # Whoosh adds a constant 1.0 for a NOT clause; differences between documents are the same.
    assert [score - got[0][1] for _, score in got] == pytest.approx([score - expected[0][1] for _, score in expected])


@pytest.mark.parametrize("text", ["budget", "NOT budget", "is:flagged", "date:2019..2021", ""])
def test_newest_sorts_like_whoosh(ix: FileIndex, text: str) -> None:
    query = compile_query(parse(text))
    with ix.searcher() as searcher:
        expected = [hit.docnum for hit in searcher.search(query, limit=50, sortedby="date", reverse=True)]
        assert newest(searcher, matching_docs(searcher, query) or set(), 50) == expected


TRICKY = [
    "alice.martin@mail.example.org wrote: l'école, e-mail and x-ray at www.example.co.uk",
    "東京都で会議を開催しました abc日本語def 한국어 テスト",
    "Élève ÉCOLE straße œuvre résumé naïve",
    "a" * 70 + " " + "b" * 300 + " QmFzZTY0IGJ1dCBub3QgcmVhbGx5IGJhc2U2NA ab12cd34ef a1b2",
    "x" * 63 + "-" + "y" * 10 + " re: fwd: 10:30 http://host.example/path?q=1",
    "",
]


@pytest.mark.parametrize("lang", [None, "en", "fr"])
def test_term_positions_are_what_iter_terms_yields(lang: str | None, corpus_dir: Path) -> None:
    stem = _stemmers[lang]
    texts = list(TRICKY)
    for path in sorted(p for p in corpus_dir.rglob("*") if p.is_file())[:150]:
        text = extract(path.read_bytes())
        texts.append("\n".join((text.subject, text.sender, text.to, text.body, text.attachment_text)))
    for text in texts:
        grouped: dict[str, list[int]] = {}
        for term, pos, _, _ in iter_terms(text, stem):
            grouped.setdefault(term, []).append(pos)
        assert term_positions(text, stem) == grouped
