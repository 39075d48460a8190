"""What an account (or one folder) held after any run or at any moment: the read side of sync fidelity.

Placements carry ``first_seen_run`` / ``gone_since_run`` and folders carry
``first_seen_run`` / ``gone_since_run``, so "after run R" is a filter, and the
flags come from the flag history (:mod:`archiver.catalog.history`).  A moment
T maps to the last run that started at or before T (``Catalog.run_at``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archiver.catalog import Catalog, PlacementRow
from archiver.errors import ArchiverError
from archiver.times import as_of_timestamp


class ListingError(ArchiverError):
    """The account, folder, run or moment asked for does not exist in the archive."""


@dataclass(frozen=True)
class FolderState:
    """A folder as of a run: whether it was still on the server, and its messages then."""

    name: str
    first_seen_run: int | None
    gone_since_run: int | None  # set when the folder had left the server by the run asked for
    gone_since: str | None
    messages: list[PlacementRow] = field(default_factory=list)
    expunged: list[PlacementRow] = field(default_factory=list)  # with include_gone: gone from the folder by then

    @property
    def gone(self) -> bool:
        return self.gone_since_run is not None


def resolve_run(catalog: Catalog, account_id: int, account: str, as_of: str | None, run_id: int | None) -> int | None:
    """The run whose end state is wanted: ``run_id``, the last run by ``as_of``, or None for "now"."""
    if run_id is not None:
        row = catalog.run(run_id)
        if row is None or row["account_id"] != account_id:
            raise ListingError(f"run {run_id} is not a run of account {account!r}")
        return run_id
    if as_of is None:
        return None
    found = catalog.run_at(account_id, as_of_timestamp(as_of))
    if found is None:
        raise ListingError(f"account {account!r} had no backup run by {as_of}")
    return found


def folder_states(
    catalog: Catalog,
    account: str,
    folder: str | None = None,
    run_id: int | None = None,
    include_gone: bool = False,
) -> list[FolderState]:
    """The folders (all, or the one named) of an account after run ``run_id`` (None: now), with their messages.

    Folders first seen after the run are left out.  Folders gone from the server by then are left out
    unless ``include_gone`` or named: they show their last known content, marked gone.  With
    ``include_gone`` each folder also lists its expunged messages (those gone by then, including the
    placements of an old UIDVALIDITY); :func:`gone_times` says when each went.
    """
    account_id = catalog.account_id(account)
    if account_id is None:
        raise ListingError(f"the archive has no account {account!r}")
    rows = catalog.db.execute(
        "SELECT name, first_seen_run, gone_since_run, gone_since FROM folders WHERE account_id = ? ORDER BY name",
        (account_id,),
    ).fetchall()
    if folder is not None:
        rows = [row for row in rows if row["name"] == folder]
        if not rows:
            raise ListingError(f"account {account!r} has no folder {folder!r}")
    states: list[FolderState] = []
    for row in rows:
        if run_id is not None and row["first_seen_run"] is not None and row["first_seen_run"] > run_id:
            continue
        gone_run = row["gone_since_run"]
        gone = gone_run is not None and (run_id is None or gone_run <= run_id)
        if gone and not (include_gone or folder is not None):
            continue
        messages = list(catalog.placements_as_of(account_id, row["name"], run_id))
        expunged = []
        if include_gone:
            expunged = list(catalog.placements_as_of(account_id, row["name"], run_id, expunged=True))
        states.append(
            FolderState(
                name=row["name"],
                first_seen_run=row["first_seen_run"],
                gone_since_run=gone_run if gone else None,
                gone_since=row["gone_since"] if gone else None,
                messages=messages,
                expunged=expunged,
            )
        )
    return states


def gone_times(catalog: Catalog, states: list[FolderState]) -> dict[int, str | None]:
    """run id → when it started, for every run that found a listed expunged message gone."""
    runs = {m.gone_since_run for s in states for m in s.expunged if m.gone_since_run is not None}
    times: dict[int, str | None] = {}
    for run_id in sorted(runs):
        row = catalog.run(run_id)
        times[run_id] = None if row is None else row["started_at"]
    return times


def placement_dict(row: PlacementRow) -> dict:
    """A placement as plain JSON-able data (``archiver ls --json``)."""
    return {
        "placement_id": row.id,
        "uidvalidity": row.uidvalidity,
        "uid": row.uid,
        "blob_id": row.blob_id,
        "flags": list(row.flags),
        "internaldate": row.internaldate,
        "size": row.size,
        "first_seen_run": row.first_seen_run,
        "gone_since_run": row.gone_since_run,
        "message_id": row.message_id,
        "subject": row.subject,
        "sender": row.sender,
        "date": row.date,
    }
