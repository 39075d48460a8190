"""Pages of phrase queries checked lazily (phrases.phrase_page) against Whoosh's own Phrase search.

Each query is run three ways: Whoosh's search with its ``Phrase`` (the
reference), ``phrase_page`` checking every candidate up front (exact totals),
and ``phrase_page`` forced to check only what the page needs, in small rounds
(estimated totals).  The pages must be the same documents in the same order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from whoosh import index as whoosh_index
from whoosh import query as wq
from whoosh.index import FileIndex

from archiver import index
from archiver.archive import Archive
from archiver.devtools.sample_mail import generate_mailbox
from archiver.index import ALL_ACCOUNTS as ALL
from archiver.index import fastmatch, phrases
from archiver.index.analysis import query_terms
from archiver.index.documents import CatalogMessage, document_from_text, make_schema
from archiver.index.fastmatch import FastPhrase, _iter_blocks, matching_docs, rank
from archiver.index.fastwrite import FastSegmentWriter
from archiver.index.phrases import phrase_page
from archiver.index.query import compile_query, parse
from archiver.index.values import STATE_ID
from archiver.mail.textextract import extract
from tests.fixtures.archives import add_messages


@pytest.fixture(scope="module")
def documents() -> list[dict]:
    docs = []
    for number, message in enumerate(generate_mailbox(360, seed=23)):
        placements = (("acct" if number % 5 else "other", message.folder, " ".join(message.flags), None),)
        catalog_message = CatalogMessage(number + 1, f"{number:064x}", len(message.raw), placements)
        docs.append(document_from_text(catalog_message, extract(message.raw)))
    return docs


@pytest.fixture(scope="module")
def ix(tmp_path_factory: pytest.TempPathFactory, documents: list[dict]) -> Iterator[FileIndex]:
    path = tmp_path_factory.mktemp("phrase") / "ix"
    path.mkdir()
    built = whoosh_index.create_in(str(path), make_schema())
    for start in range(0, len(documents), 120):  # three segments
        writer = FastSegmentWriter(built)
        for document in documents[start : start + 120]:
            writer.add_document(**document)
        writer.commit(merge=False)
    writer = built.writer()  # deletions must be honoured
    for document in documents[::13]:
        writer.delete_by_term("blob_id", document["blob_id"])
    writer.commit(merge=False)
    yield built


def _three_words(documents: list[dict]) -> str:
    words = next(d["text_en"].split() for d in documents[5:] if len(d.get("text_en", "").split()) > 40)
    return '"' + " ".join(words[20:23]) + '"'


QUERIES = [
    '"onto cluster"',
    '"the the"',  # a repeated word
    '"and and and"',
    "THREE",  # three words from a document (filled in by the test)
    '"onto cluster" from:example.ru',
    '"onto cluster" folder:inbox',
    '"onto cluster" is:flagged',
    '"onto cluster" date:2016..2020',
    'subject:"review draft" OR "draft review"',
    'budget -"onto cluster"',
    'NOT "onto cluster"',
    '"onto cluster" OR "cluster onto"',
    'deploy "onto cluster" OR rollback',
    '"nosuchword budget"',
]


def _whoosh(query: wq.Query) -> wq.Query:
    """The same query with Whoosh's own Phrase instead of ours."""
    if isinstance(query, FastPhrase):
        return wq.Phrase(query.fieldname, query.words, slop=query.slop, boost=query.boost)
    return query if query.is_leaf() else query.apply(_whoosh)


def _lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(phrases, "CHECK_ALL_BLOCKS", -1)  # never check everything up front
    monkeypatch.setattr(phrases, "FIRST_ROUND", 4)
    monkeypatch.setattr(phrases, "SAMPLE", 40)


@pytest.mark.parametrize("mode", ["exact", "lazy"])
@pytest.mark.parametrize("sort", ["relevance", "date"])
@pytest.mark.parametrize("text", QUERIES)
def test_phrase_pages_are_whooshs_pages(
    ix: FileIndex, documents: list[dict], text: str, sort: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if mode == "lazy":
        _lazily(monkeypatch)
    text = _three_words(documents) if text == "THREE" else text
    query = wq.AndNot(compile_query(parse(text)), wq.Term("blob_id", STATE_ID))  # as search() runs it
    with ix.searcher() as searcher:
        reference = _whoosh(query)
        deleted = searcher.reader().is_deleted  # (Whoosh's NOT can return a deleted document)
        matches = {d for d in searcher.docs_for_query(reference) if not deleted(d)}
        total = len(matches)
        for page_size, page in ((10, 1), (10, 3), (7, 2), (500, 1)):
            need = page * page_size
            if sort == "date":
                hits = searcher.search(reference, limit=need + 40, sortedby="date", reverse=True)
                expected = [(h.docnum, 0.0) for h in hits if not deleted(h.docnum)][:need]
            elif text.count('"') != 2 or text[0] + text[-1] != '""':  # more than a phrase: Whoosh's scores differ
                # (a NOT adds a per-segment constant, an OR ignores words of branches that fail): ours of its matches
                expected = rank(searcher, query, matches, need)
            else:
                expected = [(h.docnum, h.score) for h in searcher.search(reference, limit=need, terms=False)]
            got = phrase_page(searcher, query, need, sort)
            assert got is not None
            found, count, exact = got
            assert [d for d, _ in found] == [d for d, _ in expected], (text, page_size, page)
            if sort == "relevance":
                assert [s for _, s in found] == pytest.approx([s for _, s in expected]), text
            if exact:
                assert count == total, (text, page_size, page)
            else:
                assert mode == "lazy" and len(found) == need  # estimated only when the page was full
                assert 0.5 * total <= count <= 2 * total + 20, (text, count, total)


def test_lazy_pages_leave_most_candidates_unchecked(ix: FileIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    _lazily(monkeypatch)
    checked: list[int] = []
    real = fastmatch._PhraseScan.check

    def spy(self: fastmatch._PhraseScan, docnums: object) -> set[int]:
        docnums = list(docnums)  # type: ignore[call-overload]
        checked.extend(docnums)
        return real(self, docnums)

    monkeypatch.setattr(fastmatch._PhraseScan, "check", spy)
    monkeypatch.setattr(phrases._Segment, "sample", lambda self, size: [])  # the page's checks only
    query = compile_query(parse('"the the"'))
    with ix.searcher() as searcher:
        candidates = sum(len(q.candidates) for q in _scans(searcher, query))
        found, _, exact = phrase_page(searcher, query, 5, "relevance")  # type: ignore[misc]
        assert len(found) == 5 and not exact
    assert len(checked) < candidates / 2


def _scans(searcher, query: wq.Query) -> list[fastmatch._PhraseScan]:  # type: ignore[no-untyped-def]
    out = []
    for leaf, _ in searcher.leaf_searchers():
        reader = leaf.reader()
        for phrase in phrases._phrases(query):
            out.append(fastmatch._PhraseScan(reader, phrase, fastmatch._blocks_cache(reader, cached=False)))
    return out


def test_phrase_page_honours_a_restriction(ix: FileIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    query = compile_query(parse('"onto cluster" OR "the the"'))
    restrict = wq.Or([wq.Term("account", "other")])
    with ix.searcher() as searcher:
        expected = [h.docnum for h in searcher.search(_whoosh(query), limit=50, filter=restrict, terms=False)]
        allowed = set(searcher.docs_for_query(wq.And([_whoosh(query), restrict])))
        for lazy in (False, True):
            if lazy:
                _lazily(monkeypatch)
            found, count, exact = phrase_page(searcher, query, 50, "relevance", restrict)  # type: ignore[misc]
            assert [d for d, _ in found] == expected
            assert not exact or count == len(allowed)


def test_rank_scores_phrases_like_whoosh(ix: FileIndex, documents: list[dict]) -> None:
    for text in ('"onto cluster"', _three_words(documents), '"the the" budget'):
        query = compile_query(parse(text))
        with ix.searcher() as searcher:
            expected = [(h.docnum, h.score) for h in searcher.search(_whoosh(query), limit=40, terms=False)]
            got = rank(searcher, query, matching_docs(searcher, query) or set(), 40)
        assert [d for d, _ in got] == [d for d, _ in expected]
        assert [s for _, s in got] == pytest.approx([s for _, s in expected])


def test_block_heads_read_whooshs_ids_and_weights(ix: FileIndex) -> None:
    with ix.searcher() as searcher:
        for leaf, _ in searcher.leaf_searchers():
            reader = leaf.reader()
            for fieldname, btext in reader.all_terms():
                postings = reader.postings(fieldname, btext)
                expected = []
                while postings.is_active():
                    expected.append((postings.id(), postings.weight()))
                    postings.next()
                got = [
                    (docnum, weight)
                    for _, ids, weights in _iter_blocks(reader, fieldname, btext)
                    for docnum, weight in zip(ids, fastmatch._weights_list(weights, len(ids)), strict=True)
                    if not reader.is_deleted(docnum)  # (Whoosh's postings leave deleted documents out)
                ]
                assert got == expected, (fieldname, btext)


def test_search_reports_an_estimated_total(archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(5)
    messages = [(m.folder, m.raw, m.flags, m.internaldate) for m in generate_mailbox(150, seed=31)]
    rng.shuffle(messages)
    add_messages(archive, "work", messages)
    index.update_index(archive)
    words = query_terms("the the", "en")
    assert words == ["the", "the"]
    exact = index.search(archive, '"the the"', accounts=ALL, page_size=5, snippets=False)
    assert exact.total_exact and exact.total > 10
    _lazily(monkeypatch)
    lazy = index.search(archive, '"the the"', accounts=ALL, page_size=5, snippets=False)
    assert not lazy.total_exact
    assert [h.blob_id for h in lazy.hits] == [h.blob_id for h in exact.hits]
    by_date = index.search(archive, '"the the"', accounts=ALL, page_size=5, page=2, sort="date", snippets=False)
    monkeypatch.undo()
    assert [h.blob_id for h in by_date.hits] == [
        h.blob_id
        for h in index.search(archive, '"the the"', accounts=ALL, page_size=5, page=2, sort="date", snippets=False).hits
    ]


def test_values_read_one_at_a_time_are_whooshs(ix: FileIndex) -> None:
    split = 0
    with ix.searcher() as searcher:
        for leaf, _ in searcher.leaf_searchers():
            reader = leaf.reader()
            for fieldname, btext in reader.all_terms():
                if fieldname not in ("text_en", "text_fr", "subject"):
                    continue
                blocks = fastmatch._TermBlocks(fastmatch._TermIndex(reader, fieldname, btext), cached=False)
                for block in range(len(blocks)):
                    values = blocks._block_values(block)
                    split += isinstance(values, fastmatch._SplitValues)
                    raw = reader._terms.matcher(fieldname, btext, reader.schema[fieldname].format)
                    for _ in range(block):
                        raw._goto(raw._nextoffset)
                    raw._read_data()
                    assert list(values) == list(raw._data[2]), (fieldname, btext, block)
    assert split > 100


def test_cached_postings_give_the_same_pages(ix: FileIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    query = compile_query(parse('"the the" OR "onto cluster"'))
    with ix.searcher() as searcher:
        first = phrase_page(searcher, query, 30, "relevance")
        again = phrase_page(searcher, query, 30, "relevance")  # from the cache
        assert again == first and fastmatch._term_cache
    monkeypatch.setattr(fastmatch, "TERM_CACHE_BYTES", 1)  # every entry but the last evicted at once
    with ix.searcher() as searcher:  # new readers: nothing cached for them
        assert phrase_page(searcher, query, 30, "relevance") == first
        assert phrase_page(searcher, query, 30, "date") == phrase_page(searcher, query, 30, "date")
    assert len(fastmatch._term_cache) == 1
