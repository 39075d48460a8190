"""A result's snippet: an excerpt of the message around its matches, the matches in ``<mark>``.

Kept apart from :mod:`archiver.index.searcher`, and imported by it only for a page that shows
snippets: making one re-reads the message and parses it (the ``email`` package), which a search
that lists results without them (``archiver search`` by default) does not pay for.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from whoosh import query as wq

from archiver.index.analysis import _stemmers, iter_terms
from archiver.mail.textextract import ExtractLimits, extract
from archiver.store import BlobBackend

SNIPPET_CHARS = 240
SNIPPET_SOURCE_BYTES = 256 * 1024
_SNIPPET_LIMITS = ExtractLimits(max_body_chars=60_000, attachments=False)


def page_snippets(store: BlobBackend, blob_ids: Sequence[str], query: wq.Query) -> dict[str, str]:
    """The snippet of each blob for ``query``: its text re-read from the store (never a failure: "" then)."""
    wanted = _highlight_terms(query)
    found = {}
    for blob_id in blob_ids:
        try:
            with store.open(blob_id) as reader:  # the text is near the top: never parse an 8 MB attachment
                text = extract(reader.read(SNIPPET_SOURCE_BYTES), _SNIPPET_LIMITS).body
        except Exception:  # a snippet never fails a search (the hit still shows)
            text = ""
        found[blob_id] = snippet(text, wanted)
    return found


def _highlight_terms(query: wq.Query) -> dict[str | None, set[str]]:
    """Terms worth marking in a body: per analysis ('en', 'fr', None) the indexed forms."""
    wanted: dict[str | None, set[str]] = {"en": set(), "fr": set(), None: set()}
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


def snippet(text: str, wanted: dict, width: int = SNIPPET_CHARS) -> str:
    """An escaped excerpt of ``text`` around its densest cluster of matches, matches in <mark>."""
    spans: list[tuple[int, int]] = []
    checks = [(lang, terms) for lang, terms in wanted.items() if terms]
    if checks:
        for lang, terms in checks:
            for term, _, start, end in iter_terms(text, _stemmers.get(lang)):
                if term in terms:
                    spans.append((start, end))
        spans = sorted(set(spans))
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
