"""Which accounts a search may see: an explicit value every caller must pass.

The index holds one document per unique message, shared by every account
that archived it, so who may see what cannot be left to the caller's memory.
A search takes either a collection of account names, where an empty one
means *nothing* (a web user without accounts), or :data:`ALL_ACCOUNTS`, which
only the administrator's tools pass (the CLI, an admin in the web UI, the
demo, benches).  ``None`` is refused: it is what a missing ``accounts`` key
turns into, and it used to mean "everything".
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final


class _AllAccounts:
    """The type of :data:`ALL_ACCOUNTS` (a single instance)."""

    _instance: _AllAccounts | None = None

    def __new__(cls) -> _AllAccounts:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ALL_ACCOUNTS"


#: Every account of the archive, hidden placements included: for administrators only.
ALL_ACCOUNTS: Final = _AllAccounts()

#: What a search's ``accounts`` argument may be.
Accounts = Collection[str] | _AllAccounts


def visible_set(accounts: Accounts) -> frozenset[str] | None:
    """The exact account names a search may see; None for :data:`ALL_ACCOUNTS`.

    Raises TypeError for None or a bare string (``"work"`` would be the
    accounts ``w``, ``o``, ``r``, ``k``): both are programming errors, and
    guessing would either leak or hide mail.
    """
    if accounts is ALL_ACCOUNTS:
        return None
    if accounts is None or isinstance(accounts, str | bytes) or not isinstance(accounts, Collection):
        raise TypeError(f"accounts must be a collection of account names or ALL_ACCOUNTS, not {accounts!r}")
    return frozenset(accounts)
