"""Ids in URLs, forms and query strings: one parser, so no id reaches SQLite unchecked.

SQLite integers are signed 64-bit; a larger number raises ``OverflowError``
deep in a query (a 500).  Python's ``str.isdigit`` also accepts digits such as
``"²"`` that ``int`` refuses.  Every id the web layer takes goes through
:func:`parse_id` or the ``<id:…>`` URL converter, and a bad id is a 404 like
an id that does not exist.
"""

from __future__ import annotations

import re

from werkzeug.routing import BaseConverter, ValidationError

MAX_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_id(text: str) -> int | None:
    """``text`` as a catalog id (ASCII digits, 0 … 2**63-1), else None."""
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= MAX_ID else None


class IdConverter(BaseConverter):
    """``<id:name>``: like ``<int:name>`` but only ids SQLite can hold (others: no route, a 404)."""

    regex = r"[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        parsed = parse_id(value)
        if parsed is None:
            raise ValidationError()
        return parsed

    def to_url(self, value: int) -> str:
        return str(int(value))
