"""Result excerpts: the same marks as the index's own analysis finds, the same page warm or cold, never leaking.

The excerpts come from bounded caches (body text per blob, excerpt per blob and
terms) shared by every user of a process: what one user's search put there
must never show up in another user's results.
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from archiver import index
from archiver.archive import Archive
from archiver.devtools.sample_mail import corpus_messages, generate_mailbox
from archiver.index import ALL_ACCOUNTS as ALL
from archiver.index import snippets
from archiver.index.analysis import _stemmers, iter_terms
from archiver.mail.textextract import extract
from tests.fixtures.archives import add_messages
from tests.fixtures.webdata import message


def reference_spans(text: str, wanted: snippets.Wanted) -> list[tuple[int, int]]:
    """What every term of the whole text, analysed as the index does, says should be marked."""
    found = set()
    for lang, terms in wanted.items():
        if terms:
            for term, _, start, end in iter_terms(text, _stemmers.get(lang)):
                if term in terms:
                    found.add((start, end))
    return sorted(found)


def wanted_from(text: str, pick: int) -> snippets.Wanted:
    """Terms of ``text`` in each analysis, some of them, as a query for them would want them marked."""
    wanted: snippets.Wanted = {}
    for lang in ("en", "fr", None):
        terms = sorted({term for term, *_ in iter_terms(text, _stemmers.get(lang))})
        wanted[lang] = set(terms[pick % max(1, len(terms)) :: 7])
    return wanted


def test_marks_are_those_of_the_index_analysis_on_generated_and_real_mail(corpus_dir: Path) -> None:
    limits = snippets._SNIPPET_LIMITS
    texts = [extract(m.raw, limits).body for m in generate_mailbox(150, seed=11)]
    texts += [extract(raw, limits).body for (_, raw), _ in zip(corpus_messages(corpus_dir), range(300), strict=False)]
    wrong = [
        n
        for n, text in enumerate(texts)
        if snippets.match_spans(text, w := wanted_from(text, n)) != reference_spans(text, w)
    ]
    assert len(texts) > 300 and wrong == []


WORDS = st.sampled_from(
    ["Réunion", "réunions", "budget", "budgets", "e-mail", "anna@example.org", "www.example.co.uk", "O'Neil",
     "東京都庁", "Straße", "x86_64", "a1b2c3d4e5f6a7b8c9d0", "running", "ran", "l'été", "naïve", "ŒUVRE", "42"]
)  # fmt: skip
SEPARATORS = st.sampled_from([" ", "\n", ", ", ". ", " - ", "(", ")", "_", "--", "…"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(WORDS, SEPARATORS), max_size=40), st.integers(0, 20))
def test_marks_match_the_analysis_on_any_mix_of_words(pieces: list[tuple[str, str]], pick: int) -> None:
    text = "".join(word + sep for word, sep in pieces)
    wanted = wanted_from(text, pick)
    assert snippets.match_spans(text, wanted) == reference_spans(text, wanted)


def test_the_caches_stay_within_their_bounds_and_forget_the_least_recent() -> None:
    cache = snippets.BoundedCache(1000)
    for n in range(100):
        cache.put(f"k{n}", "x" * 100)
    assert cache._size <= 1000 and cache.get("k99") == "x" * 100 and cache.get("k0") is None
    cache.put("huge", "y" * 5000)  # larger than the whole cache: not kept, nothing else lost for it
    assert cache.get("huge") is None and cache.get("k99") is not None
    counted = snippets.BoundedCache(3, cost=lambda _: 1)
    for key in "abcd":
        counted.put(key, key)
    counted.get("b")
    counted.put("e", "e")
    assert [counted.get(k) for k in "abcde"] == [None, "b", None, "d", "e"]


def page(archive: Archive, query: str) -> list[tuple[str, str]]:
    return [(h.blob_id, h.snippet_html) for h in index.search(archive, query, accounts=ALL, page_size=50).hits]


def test_a_page_is_the_same_with_warm_or_cold_caches(archive: Archive) -> None:
    raws = [message(f"note {n}", f"the walrus {n} met a réunion of carpenters; walruses sing", n=n) for n in range(30)]
    add_messages(archive, "acct", [("INBOX", raw, (), None) for raw in raws])
    index.update_index(archive)
    snippets.clear_caches()
    cold = {q: page(archive, q) for q in ("walrus", "réunion carpenters", '"walrus 7"', "note")}
    warm = {q: page(archive, q) for q in cold}
    assert warm == cold and all(cold.values())
    assert any("<mark>walrus</mark>" in html for _, html in cold["walrus"])


def test_an_unreadable_message_gets_no_excerpt_until_it_can_be_read_again(archive: Archive) -> None:
    add_messages(archive, "acct", [("INBOX", message("lost", "the narwhal is here", n=1), (), None)])
    index.update_index(archive)
    ((blob_id, _),) = page(archive, "narwhal")
    path = archive.store.path_of(blob_id)
    saved = path.read_bytes()
    path.unlink()
    snippets.clear_caches()
    assert page(archive, "narwhal") == [(blob_id, "")]  # the hit still shows, without an excerpt
    path.write_bytes(saved)
    assert "<mark>narwhal</mark>" in page(archive, "narwhal")[0][1]  # the empty excerpt was not remembered


def test_one_users_search_never_shows_in_anothers_results(app, root, bob) -> None:
    snippets.clear_caches()
    admin_page = root.get("/search?q=quokka").get_data(as_text=True)
    assert "<mark>quokka</mark>" in admin_page  # beta's message, its excerpt now cached
    for query in ("quokka", "body", "body+quokka", "secret", "beta"):
        page_text = bob.get(f"/search?q={query}").get_data(as_text=True)
        excerpts = re.findall(r'<p class="snippet">(.*?)</p>', page_text, re.S)
        assert [e for e in excerpts if "quokka" in e] == [] and "beta secret" not in page_text, query
