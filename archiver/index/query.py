"""Our query syntax → a Whoosh query.

Grammar (case-insensitive operators; adjacent terms are ANDed; AND binds
tighter than OR)::

    query   := or
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*
    unary   := ("NOT" | "-") unary | "(" or ")" | atom
    atom    := word | "phrase" | field ":" (word | "phrase")

A word may hold ``*`` and ``?`` wildcards.  Fields: ``from to cc bcc subject
filename folder (in) account list msgid has is date before after size``.
Any other ``name:value`` is an error naming the fields (a mistyped field
would otherwise find nothing, silently), except where the colon is plainly
not a field's: a URL or URI (``http://…``, ``mailto:…``), a reply marker
(``Re:…``); those, and a colon after anything but letters (``10:30``), are
searched as words.
Parsing is pure; :func:`compile_query` is the only Whoosh-aware part.
"""

from __future__ import annotations

import calendar
import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from whoosh import query as wq

from archiver.errors import ArchiverError
from archiver.index.analysis import fold, query_terms
from archiver.index.fastmatch import FastPhrase
from archiver.index.values import MAX_SIZE, OWNER_SEP, date_key, owned, to_minutes


class QuerySyntaxError(ArchiverError):
    """The search query cannot be understood (the message says where)."""


ADDRESS_FIELDS = {"from": "sender", "to": "to", "cc": "cc", "bcc": "bcc"}
FIELDS = {*ADDRESS_FIELDS, "subject", "filename", "folder", "in", "account", "list", "msgid", "has", "is"}
FIELDS |= {"date", "before", "after", "size"}
IS_VALUES = {"flagged": "flagged", "unread": "unread", "read": "seen", "seen": "seen", "answered": "answered"}
IS_VALUES |= {"draft": "draft", "deleted": "deleted", "replied": "answered", "starred": "flagged"}
TEXT_FIELDS = (("text_en", "en"), ("text_fr", "fr"))
BARE_FIELDS: tuple[tuple[str, str | None], ...] = ()  # subject, addresses, file names are in text_*
#: Prefixes that are not fields but part of what a user pastes: URI schemes without ``//`` and reply markers.
NOT_FIELDS = {"mailto", "tel", "urn", "news", "cid", "mid", "data", "sip", "xmpp", "magnet", "geo"}
NOT_FIELDS |= {"re", "fw", "fwd", "aw", "sv", "tr", "wg", "rif", "antw", "vs"}
#: Other tools' names for "the text": the hint says a bare word already searches it.
TEXT_ALIASES = {"body", "text", "content", "contents", "message"}


@dataclass(frozen=True)
class Atom:
    field: str | None  # None: everywhere
    value: str
    phrase: bool = False


@dataclass(frozen=True)
class Node:
    op: str  # "and" | "or" | "not"
    children: tuple[Node | Atom, ...]


_TOKEN = re.compile(r'\s*(?:(\()|(\))|(-)?(?:([A-Za-z-]+):)?(?:"([^"]*)"?|([^\s()"]+)))')


def _lex(text: str) -> Iterator[tuple[str, object]]:
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise QuerySyntaxError(f"cannot read the query at {text[position : position + 20]!r}")
        position = match.end()
        opening, closing, minus, prefix, quoted, word = match.groups()
        if opening:
            yield "(", None
        elif closing:
            yield ")", None
        else:
            if minus:
                yield "not", None
            field = prefix.lower() if prefix and prefix.lower() in FIELDS else None
            if prefix and field is None:  # not one of ours: part of the word (e.g. a URL), or a mistake
                _check_not_a_field(prefix, word if word is not None else quoted, word is None)
                word = f"{prefix}:{word if word is not None else quoted}"
                quoted = None
            if field is None and quoted is None and word in ("AND", "OR", "NOT"):
                yield word.lower(), None
            elif quoted is not None:
                yield "atom", Atom(field, quoted, phrase=True)
            else:
                yield "atom", Atom(field, word or "")


def _check_not_a_field(prefix: str, value: str, quoted: bool) -> None:
    """Raise for an unknown ``prefix:value`` a user meant as a field; let a URL, URI or ``Re:`` through."""
    name = prefix.lower()
    if name in NOT_FIELDS or value.startswith("/"):
        return
    shown = f'{prefix}:"{value}"' if quoted else f"{prefix}:{value}"
    if name in TEXT_ALIASES:
        hint = f"a word without a field already searches the text: {value!r}"
    else:
        import difflib  # only for a field that does not exist

        close = difflib.get_close_matches(name, sorted(FIELDS), n=1, cutoff=0.7)
        hint = f"did you mean {close[0]}:?" if close else "to search it as text, put it in double quotes"
    fields = ", ".join(sorted(FIELDS))
    raise QuerySyntaxError(f"unknown search field {prefix!r} in {shown}: {hint} (fields: {fields})")


def parse(text: str) -> Node | Atom | None:
    """The syntax tree of a query (None for an empty query)."""
    tokens = list(_lex(text))
    position = 0

    def peek() -> str | None:
        return tokens[position][0] if position < len(tokens) else None

    def take() -> tuple[str, object]:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def parse_or() -> Node | Atom:
        parts = [parse_and()]
        while peek() == "or":
            take()
            parts.append(parse_and())
        return parts[0] if len(parts) == 1 else Node("or", tuple(parts))

    def parse_and() -> Node | Atom:
        parts = [parse_unary()]
        while peek() not in (None, ")", "or"):
            if peek() == "and":
                take()
            parts.append(parse_unary())
        return parts[0] if len(parts) == 1 else Node("and", tuple(parts))

    def parse_unary() -> Node | Atom:
        kind, value = take() if peek() is not None else ("end", None)
        if kind == "not":
            return Node("not", (parse_unary(),))
        if kind == "(":
            inner = parse_or()
            if peek() != ")":
                raise QuerySyntaxError("a '(' in the query is not closed")
            take()
            return inner
        if kind == "atom":
            return value  # type: ignore[return-value]
        raise QuerySyntaxError("the query ends where a word was expected" if kind == "end" else f"unexpected {kind!r}")

    if not tokens:
        return None
    tree = parse_or()
    if position != len(tokens):
        raise QuerySyntaxError("unbalanced ')' in the query")
    return tree


# -- dates and sizes ---------------------------------------------------------------
def _date_bounds(text: str) -> tuple[datetime, datetime]:
    """[start, end) of a YYYY, YYYY-MM or YYYY-MM-DD (also with '/')."""
    match = re.fullmatch(r"(\d{4})(?:[-/](\d{1,2})(?:[-/](\d{1,2}))?)?", text.strip())
    if not match:
        raise QuerySyntaxError(f"{text!r} is not a date: use YYYY, YYYY-MM or YYYY-MM-DD")
    year, month, day = (int(g) if g else None for g in match.groups())
    try:  # (the end of 9999-12 is past datetime's range: an OverflowError, which a user reads the same way)
        if month is None:
            return datetime(year, 1, 1), datetime(year + 1, 1, 1)
        if day is None:
            last = calendar.monthrange(year, month)[1]
            return datetime(year, month, 1), datetime(year, month, last) + (datetime(2000, 1, 2) - datetime(2000, 1, 1))
        start = datetime(year, month, day)
        return start, start + (datetime(2000, 1, 2) - datetime(2000, 1, 1))
    except (ValueError, OverflowError) as exc:
        raise QuerySyntaxError(f"{text!r} is not a valid date: {exc}") from None


def date_range(field: str, value: str) -> tuple[datetime | None, datetime | None]:
    """[start, end) for ``date:``, ``before:`` and ``after:`` values."""
    if field == "before":
        return None, _date_bounds(value)[0]
    if field == "after":
        return _date_bounds(value)[0], None
    if ".." in value:
        low, high = value.split("..", 1)
        return (_date_bounds(low)[0] if low else None, _date_bounds(high)[1] if high else None)
    return _date_bounds(value)


_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3}


def size_range(value: str) -> tuple[int | None, int | None]:
    """``>5M``, ``<100k``, ``>=1G``, ``5M`` (at least) → (low, high) bytes, inclusive."""
    match = re.fullmatch(r"([<>]=?)?(\d+(?:\.\d+)?)([a-zA-Z]*)", value.strip())
    if not match or match.group(3).lower() not in _UNITS:
        raise QuerySyntaxError(f"{value!r} is not a size: use e.g. size:>5M or size:<100k")
    number = int(float(match.group(2)) * _UNITS[match.group(3).lower()])
    op = match.group(1) or ">="
    return {">": (number + 1, None), ">=": (number, None), "<": (None, number - 1), "<=": (None, number)}[op]


# -- compiling -----------------------------------------------------------------------
def _terms_query(field: str, terms: list[str], phrase_ok: bool) -> wq.Query | None:
    if not terms:
        return None
    if len(terms) == 1:
        return wq.Term(field, terms[0])
    return FastPhrase(field, terms) if phrase_ok else wq.And([wq.Term(field, t) for t in terms])


def _wildcard(field: str, value: str) -> wq.Query:
    return wq.Wildcard(field, fold(value))


def _text_query(atom: Atom, fields: tuple[tuple[str, str | None], ...], phrase_fields: set[str]) -> wq.Query:
    wild = not atom.phrase and any(c in atom.value for c in "*?")
    queries = []
    for field, lang in fields:
        if wild:
            queries.append(_wildcard(field, atom.value))
            continue
        compiled = _terms_query(field, query_terms(atom.value, lang), field in phrase_fields)
        if compiled is not None:
            queries.append(compiled)
    if not queries:
        return wq.NullQuery
    return queries[0] if len(queries) == 1 else wq.Or(queries)


def _keyword(field: str, value: str) -> wq.Query:
    value = value.lower()
    if any(c in value for c in "*?"):
        return wq.Wildcard(field, value)
    return wq.Term(field, value)


def _any_of(queries: list[wq.Query]) -> wq.Query:
    if not queries:
        return wq.NullQuery
    return queries[0] if len(queries) == 1 else wq.Or(queries)


def _owned_keyword(field: str, value: str, visible: frozenset[str]) -> wq.Query:
    """``folder:``/``is:`` for a viewer: the word in the viewer's own accounts' placements only."""
    word = value.lower()  # (not the account name: "Work" and "work" are two accounts)
    kind = wq.Wildcard if any(c in word for c in "*?") else wq.Term
    return _any_of([kind(field, owned(account, word)) for account in sorted(visible)])


def _owner(value: str, visible: frozenset[str]) -> wq.Query:
    """``account:`` for a viewer: names among the viewer's accounts only (case-insensitive, wildcards)."""
    pattern = value.lower()
    return _any_of([wq.Term("owner", a) for a in sorted(visible) if fnmatch.fnmatchcase(a.lower(), pattern)])


def _owned_dates(low: int | None, high: int | None, visible: frozenset[str]) -> wq.Query:
    """A date range for a viewer: the Date header, or (without one) the viewer's own earliest INTERNALDATE."""
    by_header = wq.AndNot(wq.NumericRange("date", low, high), wq.Term("owner_date", OWNER_SEP))
    first, last = date_key(low or 0), date_key(high if high is not None else 10**10 - 1)
    by_placement = [wq.TermRange("owner_date", owned(a, first), owned(a, last)) for a in sorted(visible)]
    return _any_of([by_header, *by_placement])


def compile_atom(atom: Atom, visible: frozenset[str] | None = None) -> wq.Query:
    """The Whoosh query of one atom; ``visible`` (None: every account) limits placement fields to those accounts."""
    field = atom.field
    value = atom.value
    if visible is not None and field in ("folder", "in"):
        return _owned_keyword("owner_folder", value, visible)
    if visible is not None and field == "account":
        return _owner(value, visible)
    if field is None:
        return _text_query(atom, TEXT_FIELDS + BARE_FIELDS, {"text_en", "text_fr", "subject"})
    if field in ADDRESS_FIELDS:
        return _text_query(atom, ((ADDRESS_FIELDS[field], None),), set())
    if field == "subject":
        return _text_query(atom, (("subject", None),), {"subject"})
    if field == "filename":
        return _text_query(atom, (("filename", None),), set())
    if field in ("folder", "in"):
        return _keyword("folder", value)
    if field == "account":
        return _keyword("account", value)
    if field == "list":
        return wq.Wildcard("list_id", f"*{value.lower()}*") if "*" not in value else _keyword("list_id", value)
    if field == "msgid":
        return wq.Term("message_id", value.strip("<> ").lower())
    if field == "has":
        return wq.Term("has", "attachment" if value.lower() in ("attachment", "attachments") else value.lower())
    if field == "is":
        flag = IS_VALUES.get(value.lower())
        if flag is None:
            raise QuerySyntaxError(f"is:{value} is not known: use one of {', '.join(sorted(IS_VALUES))}")
        if visible is not None:
            return _owned_keyword("owner_flag", flag, visible)
        return wq.Term("flags", flag)
    if field in ("date", "before", "after"):
        start, end = date_range(field, value)
        low = to_minutes(start) if start else None
        high = to_minutes(end) - 1 if end else None  # [start, end) in whole minutes
        if visible is not None:
            return _owned_dates(low, high, visible)
        return wq.NumericRange("date", low, high)
    if field == "size":
        low, high = size_range(value)
        return wq.NumericRange("size", low, min(high, MAX_SIZE) if high is not None else None)
    raise QuerySyntaxError(f"unknown search field {field!r}")  # pragma: no cover - the lexer filters


def compile_query(tree: Node | Atom | None, visible: frozenset[str] | None = None) -> wq.Query:
    """The Whoosh query for a syntax tree (everything for an empty query).

    With ``visible`` (account names; None: every account), the fields that
    come from placements (``folder:``, ``in:``, ``account:``, ``is:``) match
    only through those accounts' placements: a message shared with another
    account is not found by that account's folder names or flags.  The
    caller still limits the documents to the visible accounts.
    """
    if tree is None:
        return wq.Every()
    if isinstance(tree, Atom):
        return compile_atom(tree, visible)
    if tree.op == "not":
        return wq.Not(compile_query(tree.children[0], visible))
    children = [compile_query(child, visible) for child in tree.children]
    return wq.And(children) if tree.op == "and" else wq.Or(children)
