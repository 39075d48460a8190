"""What a command selects: a :class:`Scope` (messages, folders or an account, now or as of a date
or run) resolved against the catalog into :class:`Item` s, streamed folder by folder.

One reading of a scope for every command that takes one: ``archiver restore`` and the web UI's
restore (:mod:`archiver.restore.plan`), ``archiver export`` (:mod:`archiver.files.export`); the
run a date or run number means is :func:`archiver.catalog.as_of.resolve_run`, as ``archiver ls``
reads it.  Reads the catalog only: no server, no blob.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from archiver.catalog import Catalog, PlacementRow
from archiver.catalog.as_of import resolve_run
from archiver.errors import RestoreError
from archiver.store.local import is_blob_id


@dataclass(frozen=True)
class Scope:
    """What to restore or export.  ``messages`` alone may omit ``account``; else it is required.

    ``messages``: blob ids (64 hex) or placement ids (digits).  ``folders``: decoded folder names as
    ``archiver status`` shows them.  Neither: the whole account.  ``as_of``: an ISO 8601 date or
    date-time (a bare date means the end of that day, local time); ``run_id``: state after that run.
    """

    account: str | None = None
    folders: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    as_of: str | None = None
    run_id: int | None = None


@dataclass(frozen=True)
class Item:
    """One selected message: a placement with what APPEND and the file formats need."""

    placement_id: int
    blob_id: str
    folder: str
    delimiter: str | None
    flags: tuple[str, ...]
    internaldate: str | None
    size: int
    message_id: str | None
    subject: str | None = None
    date: str | None = None  # the Date header (ISO 8601), when it parses

    @property
    def arrival(self) -> str | None:
        """The INTERNALDATE to restore: the original, else (POP3 has none) the Date header, else None."""
        return self.internaldate or self.date


def select_items(catalog: Catalog, scope: Scope) -> tuple[int | None, int | None, Iterator[Item]]:
    """(account id, run id, items ordered by folder) for a scope; streamed from the catalog.

    Without ``folders`` and ``messages`` the whole account, minus folders gone from the server by
    then.  Named folders are taken even when gone: their last known content (or as of the run).
    """
    account_id = None
    if scope.account is not None:
        account_id = catalog.account_id(scope.account)
        if account_id is None:
            raise RestoreError(f"the archive has no account {scope.account!r}")
    elif not scope.messages:
        raise RestoreError("name the source account (--account) or the messages to take")
    if scope.messages:
        return account_id, None, iter(_explicit_items(catalog, scope, account_id))
    assert account_id is not None and scope.account is not None
    run_id = resolve_run(catalog, account_id, scope.account, scope.as_of, scope.run_id)
    records = catalog.folders(account_id)
    if scope.folders:
        missing = [name for name in scope.folders if name not in records]
        if missing:
            known = ", ".join(sorted(records)[:10])
            raise RestoreError(f"account {scope.account!r} has no folder {missing[0]!r} (some it has: {known})")
        names = sorted(scope.folders)
    else:
        names = sorted(
            name
            for name, record in records.items()
            if record.gone_since_run is None or (run_id is not None and record.gone_since_run > run_id)
        )

    def generate() -> Iterator[Item]:
        for name in names:
            for row in catalog.placements_as_of(account_id, name, run_id):
                yield _item(row)

    return account_id, run_id, generate()


def _explicit_items(catalog: Catalog, scope: Scope, account_id: int | None) -> list[Item]:
    items: list[Item] = []
    for ref in scope.messages:
        ref = ref.strip().lower()
        if ref.isdigit():
            row = catalog.restore_placement(int(ref))
        elif is_blob_id(ref):
            row = catalog.restore_placement_of_blob(ref, account_id)
        else:
            raise RestoreError(f"{ref!r} is neither a blob id (64 hex digits) nor a placement id (a number)")
        if row is None:
            raise RestoreError(f"no archived message {ref}" + (f" in account {scope.account!r}" if account_id else ""))
        items.append(_item(row))
    return sorted(items, key=lambda i: (i.folder, i.internaldate or "", i.placement_id))


def _item(row: PlacementRow) -> Item:
    return Item(
        row.id,
        row.blob_id,
        row.folder,
        row.delimiter,
        row.flags,
        row.internaldate,
        row.size,
        row.message_id,
        row.subject,
        row.date,
    )
