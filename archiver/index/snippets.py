"""Highlighted excerpts of a result page's messages, and the two bounded caches that make them cheap.

A snippet costs far more than finding the hit: the blob is read and
decompressed, its MIME tree parsed for the body text, and the text analysed
word by word to find the query's terms.  Under many concurrent users that was
most of a search request's CPU.  Both inputs are immutable (a blob id is the
sha256 of the bytes; the wanted terms are the query's), so two caches are
never stale, whatever the index does:

* the body text per blob (what :func:`extract` gives), bounded in bytes;
* the finished excerpt per (blob, wanted terms), bounded in entries.

Visibility is not the caches' business: a search asks for the excerpts of
hits the viewer may already see, and an excerpt is made from the message
alone, the same for every viewer of that message.
"""

from __future__ import annotations

import html
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from functools import lru_cache
from typing import Generic, TypeVar

from whoosh import query as wq

from archiver.index.analysis import _COMPOUND, _stemmers, iter_terms
from archiver.mail.textextract import ExtractLimits, extract
from archiver.store import BlobBackend

SNIPPET_CHARS = 240
SNIPPET_SOURCE_BYTES = 256 * 1024
_SNIPPET_LIMITS = ExtractLimits(max_body_chars=60_000, attachments=False)

#: Body texts kept per process (bytes of the str objects): a few thousand typical messages.
TEXT_CACHE_BYTES = 32 * 2**20
#: Finished excerpts kept per process (each well under 2 KB).
SNIPPET_CACHE_ENTRIES = 8192
#: Distinct words whose analysis is kept per language (a few MB).
WORD_CACHE_ENTRIES = 50_000

Wanted = dict[str | None, set[str]]  # per analysis ('en', 'fr', None): the indexed forms to mark
K = TypeVar("K", bound=Hashable)


def _one(_: str) -> int:
    return 1


class BoundedCache(Generic[K]):
    """A thread-safe least-recently-used map of str values whose total ``cost`` stays within ``limit``."""

    def __init__(self, limit: int, cost: Callable[[str], int] = sys.getsizeof) -> None:
        self.limit = limit
        self._cost = cost
        self._items: OrderedDict[K, str] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> str | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: str) -> None:
        cost = self._cost(value)
        if cost > self.limit:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= self._cost(old)
            self._items[key] = value
            self._size += cost
            while self._size > self.limit:
                self._size -= self._cost(self._items.popitem(last=False)[1])

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0

    def __len__(self) -> int:
        return len(self._items)


_texts: BoundedCache[str] = BoundedCache(TEXT_CACHE_BYTES)
_snippets: BoundedCache[tuple[str, tuple]] = BoundedCache(SNIPPET_CACHE_ENTRIES, cost=_one)


def highlight_terms(query: wq.Query) -> Wanted:
    """Terms worth marking in a body: per analysis ('en', 'fr', None) the indexed forms."""
    wanted: Wanted = {"en": set(), "fr": set(), None: set()}
    for field, text in query.all_terms(phrases=True):
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if not isinstance(text, str):
            continue
        if field == "text_en":
            wanted["en"].add(text)
        elif field == "text_fr":
            wanted["fr"].add(text)
        elif field in ("subject", "sender", "to", "cc", "filename"):
            wanted[None].add(text)
    return wanted


@lru_cache(maxsize=WORD_CACHE_ENTRIES)
def _word_terms(word: str, lang: str | None) -> tuple[tuple[str, int, int], ...]:
    """(term, start, end) of one word as the index analyses it; a mailbox repeats its words, so kept."""
    return tuple((term, start, end) for term, _, start, end in iter_terms(word, _stemmers.get(lang)))


def match_spans(text: str, wanted: Wanted) -> list[tuple[int, int]]:
    """Sorted (start, end) of every term of ``text`` that is in ``wanted``, as :func:`iter_terms` finds them.

    :func:`iter_terms` analyses each word alone (its position counter aside), so
    the text is cut into the same words, each distinct word is analysed once
    (and remembered: a mailbox repeats its words), and only the words that
    hold a wanted term are looked for again.
    """
    checks = [(lang, terms) for lang, terms in wanted.items() if terms]
    if not checks:
        return []
    marked: dict[str, list[tuple[int, int]]] = {}
    for word in set(_COMPOUND.findall(text)):
        found = [
            (start, end) for lang, terms in checks for term, start, end in _word_terms(word, lang) if term in terms
        ]
        if found:
            marked[word] = found
    if not marked:
        return []
    spans: set[tuple[int, int]] = set()
    for match in _COMPOUND.finditer(text):
        found = marked.get(match.group())
        if found is not None:
            offset = match.start()
            spans.update((offset + start, offset + end) for start, end in found)
    return sorted(spans)


def snippet(text: str, wanted: Wanted, width: int = SNIPPET_CHARS) -> str:
    """An escaped excerpt of ``text`` around its densest cluster of matches, matches in <mark>."""
    spans = match_spans(text, wanted)
    if not spans:
        excerpt = " ".join(text[: width * 2].split())[:width]
        return html.escape(excerpt) + ("…" if len(text) > width else "")
    best_start, best_count = spans[0][0], 0
    j = 0
    for i, (start, _) in enumerate(spans):  # sliding window: most matches within ``width`` chars
        while spans[j][0] < start - width // 2:
            j += 1
        if i - j + 1 > best_count:
            best_count, best_start = i - j + 1, spans[j][0]
    window_start = max(0, best_start - width // 4)
    space = text.rfind(" ", 0, window_start)
    window_start = 0 if window_start == 0 or space < 0 else space + 1
    window_end = min(len(text), window_start + width)
    pieces = []
    cursor = window_start
    for start, end in spans:
        if start < cursor or end > window_end:
            continue
        pieces.append(html.escape(text[cursor:start]))
        pieces.append(f"<mark>{html.escape(text[start:end])}</mark>")
        cursor = end
    pieces.append(html.escape(text[cursor:window_end]))
    body = re.sub(r"\s+", " ", "".join(pieces)).strip()
    return ("…" if window_start > 0 else "") + body + ("…" if window_end < len(text) else "")


def body_text(store: BlobBackend, blob_id: str) -> str | None:
    """The text a snippet is cut from: the body near the top of the message (never an 8 MB attachment).

    None when the message cannot be read: not remembered, so the next search tries again.
    """
    text = _texts.get(blob_id)
    if text is None:
        try:
            with store.open(blob_id) as reader:
                text = extract(reader.read(SNIPPET_SOURCE_BYTES), _SNIPPET_LIMITS).body
        except Exception:  # a snippet never fails a search (the hit still shows, without one)
            return None
        _texts.put(blob_id, text)
    return text


def page_snippets(store: BlobBackend, blob_ids: Iterable[str], wanted: Wanted) -> dict[str, str]:
    """The excerpt (escaped HTML, only ``<mark>`` as markup) of each blob, marking ``wanted``."""
    terms = tuple(sorted((lang or "", tuple(sorted(forms))) for lang, forms in wanted.items() if forms))
    found = {}
    for blob_id in blob_ids:
        key = (blob_id, terms)
        excerpt = _snippets.get(key)
        if excerpt is None:
            text = body_text(store, blob_id)
            excerpt = "" if text is None else snippet(text, wanted)
            if text is not None:
                _snippets.put(key, excerpt)
        found[blob_id] = excerpt
    return found


def clear_caches() -> None:
    """Forget every cached text and excerpt (tests; a process that wants its memory back)."""
    _texts.clear()
    _snippets.clear()
