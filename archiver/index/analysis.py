"""Text analysis for mail: folding, compounds (addresses, URLs), CJK bigrams, stemming.

One tokenizer does all the work in a single pass (Whoosh filter chains cost a
generator hop per token per filter, and indexing speed is what limits a full
reindex):

* **Folding**: lower case, accents stripped (``Élève`` → ``eleve``), so a
  query typed without accents finds accented text and the reverse.
* **Compounds**: ``alice.martin@mail.example.org``, ``e-mail``, ``l'école``
  and ``example.org`` are indexed whole *and* as their parts; an address also
  gives its local part and every parent domain (``example.org``), so
  ``from:example.org``, ``from:alice`` and ``from:alice.martin@mail.example.org``
  all work.  In query mode a compound stays whole (an exact address query).
* **CJK**: runs of Chinese, Japanese or Korean characters become overlapping
  bigrams (``東京都`` → ``東京 京都``); a query word is analysed the same way
  and searched as a phrase, which is how n-gram CJK search works without a
  dictionary.
* **Stemming**: Snowball English or French, chosen per field (the indexer puts
  a message's text in ``text_en`` or ``text_fr`` by its detected language; a
  query searches both, each with its own stemmer).  Only plain alphabetic words
  are stemmed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from functools import lru_cache

from whoosh.analysis import Token, Tokenizer
from whoosh.lang import stemmer_for_language

MAX_TOKEN = 64  # longer runs are base64, hashes or junk: not worth an index entry

_COMPOUND = re.compile(r"[^\W_]+(?:[.@'’&+_-][^\W_]+)*")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f]+")
_PARTS = re.compile(r"[^\W_]+")


@lru_cache(maxsize=200_000)
def fold(word: str) -> str:
    """Lower case without accents (NFKD, combining marks dropped)."""
    word = word.lower()
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("ß", "ss").replace("œ", "oe")


def _stemmer(lang: str | None) -> Callable[[str], str] | None:
    if lang is None:
        return None
    stem = stemmer_for_language(lang)
    return lru_cache(maxsize=100_000)(stem)


_DIGITS = re.compile(r"\d")


def _junk(word: str) -> bool:
    """Base64 runs, hashes and ids: long, and digits mixed with letters (URLs and addresses excepted).

    They would be a third of a real mailbox's vocabulary, each term costing
    index space, while nobody searches for them.
    """
    if len(word) > MAX_TOKEN * 4:
        return True
    if "@" in word or (word.count(".") >= 1 and len(word) <= MAX_TOKEN):
        return False
    return len(_DIGITS.findall(word)) >= 2 or len(word) > 40


def _cjk_terms(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def iter_terms(
    text: str, stem: Callable[[str], str] | None = None, query: bool = False
) -> Iterator[tuple[str, int, int, int]]:
    """(term, position, start char, end char) for every indexed term of ``text``.

    Several terms may share a position (a compound and its first part).  In
    query mode compounds are not split and no suffix domains are added.
    """
    pos = -1
    for match in _COMPOUND.finditer(text):
        word = match.group()
        if len(word) >= 16 and _junk(word):
            continue
        if word.isalnum() and (word.isascii() or not _CJK.search(word)):  # a plain word: most of them
            folded = fold(word)
            if len(folded) > MAX_TOKEN:
                continue
            pos += 1
            if stem is not None and folded.isalpha():
                folded = stem(folded)
            yield folded, pos, match.start(), match.end()
            continue
        terms: list[tuple[str, int, int, int]] = []
        pos = _word_terms(word, match.start(), pos, stem, query, terms)
        yield from terms


def term_positions(text: str, stem: Callable[[str], str] | None = None) -> dict[str, list[int]]:
    """Each indexed term of ``text`` and its positions: exactly what :func:`iter_terms` yields, grouped.

    What the index writes for a text field (:class:`archiver.index.fastwrite.MailPositions`); without the
    character offsets and the generator, the plain words (nearly all of them) cost a third less.
    """
    positions: dict[str, list[int]] = {}
    pos = -1
    for word in _COMPOUND.findall(text):
        if len(word) >= 16 and _junk(word):
            continue
        if word.isalnum() and (word.isascii() or not _CJK.search(word)):
            folded = fold(word)
            if len(folded) > MAX_TOKEN:
                continue
            pos += 1
            if stem is not None and folded.isalpha():
                folded = stem(folded)
            if (seen := positions.get(folded)) is None:
                positions[folded] = [pos]
            else:
                seen.append(pos)
            continue
        terms: list[tuple[str, int, int, int]] = []
        pos = _word_terms(word, 0, pos, stem, False, terms)
        for term, at, _, _ in terms:
            positions.setdefault(term, []).append(at)
    return positions


def _word_terms(word: str, start: int, pos: int, stem: Callable[[str], str] | None, query: bool, out: list) -> int:
    """Append the terms of a compound or CJK ``word`` (at char ``start``, after position ``pos``) to ``out``.

    Returns the last position used (positions advance even for parts too long to index).
    """
    if not word.isascii() and _CJK.search(word):
        offset = 0
        for piece in re.split(f"({_CJK.pattern})", word):
            if not piece:
                continue
            if _CJK.match(piece):
                for i, gram in enumerate(_cjk_terms(piece)):
                    pos += 1
                    out.append((gram, pos, start + offset + i, start + offset + i + len(gram)))
            else:
                for part in _PARTS.finditer(piece):
                    pos += 1
                    out.append((fold(part.group()), pos, start + offset + part.start(), start + offset + part.end()))
            offset += len(piece)
        return pos
    end = start + len(word)
    folded = fold(word)
    pos += 1  # a compound: the whole, then its parts
    if len(folded) <= MAX_TOKEN:
        out.append((folded, pos, start, end))
    if query:
        return pos
    first = True
    for part in _PARTS.finditer(word):
        if not first:
            pos += 1
        first = False
        term = fold(part.group())
        if stem is not None and term.isalpha():
            term = stem(term)
        if len(term) <= MAX_TOKEN:
            out.append((term, pos, start + part.start(), start + part.end()))
    at = folded.find("@")
    if at > 0:
        local = folded[:at]
        if not _PARTS.fullmatch(local):
            out.append((local, pos, start, start + at))
    domain = folded[at + 1 :]
    labels = domain.split(".")
    if len(labels) >= 2 and (at > 0 or len(labels) >= 3) and labels[-1].isalpha():
        for i in range(1 if at < 0 else 0, len(labels) - 1):  # parent domains (a host's too)
            out.append((".".join(labels[i:]), pos, start + at + 1, end))
    return pos


class MailTokenizer(Tokenizer):
    """Whoosh adapter of :func:`iter_terms`; ``lang`` picks the stemmer (None: no stemming)."""

    def __init__(self, lang: str | None = None) -> None:
        self.lang = lang
        self._stem = _stemmer(lang)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MailTokenizer) and other.lang == self.lang

    def __hash__(self) -> int:
        return hash(("MailTokenizer", self.lang))

    def __getstate__(self) -> dict:
        return {"lang": self.lang}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["lang"])

    def __call__(  # type: ignore[override]
        self,
        value: str,
        positions: bool = False,
        chars: bool = False,
        keeporiginal: bool = False,
        removestops: bool = True,
        start_pos: int = 0,
        start_char: int = 0,
        tokenize: bool = True,
        mode: str = "",
        **kwargs: object,
    ) -> Iterator[Token]:
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        stem = self._stem
        for term, pos, start, end in iter_terms(value, stem, query=mode == "query"):
            token.text = term
            token.boost = 1.0
            token.stopped = False
            if keeporiginal:
                token.original = value[start:end]
            if positions:
                token.pos = start_pos + pos
            if chars:
                token.startchar = start_char + start
                token.endchar = start_char + end
            yield token


def query_terms(word: str, lang: str | None = None) -> list[str]:
    """The terms a query word becomes in a field analysed with ``lang`` (compounds kept whole)."""
    return [term for term, *_ in iter_terms(word, _stemmers.get(lang), query=True)]


_stemmers: dict[str | None, Callable[[str], str] | None] = {None: None, "en": _stemmer("en"), "fr": _stemmer("fr")}
