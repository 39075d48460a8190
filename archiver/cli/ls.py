"""``archiver ls``: the content of an account or folder as it is now, after a run, or at a moment."""

from __future__ import annotations

import click

from archiver.archive import Archive
from archiver.catalog import PlacementRow
from archiver.catalog.as_of import folder_states, gone_times, placement_dict, resolve_run
from archiver.cli._common import (
    account_option,
    as_of_option,
    emit_json,
    human_bytes,
    json_option,
    run_option,
    with_archive,
)


def _one_moment(ctx: click.Context, as_of: str | None, run_id: int | None, **_: object) -> None:
    """--as-of and --run both name a moment: one of them, checked before the archive opens."""
    if as_of is not None and run_id is not None:
        raise click.UsageError("give --as-of or --run, not both")


@click.command(name="ls")
@account_option("The account to list.", required=True)
@click.option("--folder", "folder", metavar="NAME", help="Only this folder (shown even if gone from the server).")
@as_of_option("As it was at a date or date-time (ISO 8601, local time).")
@run_option("As it was after backup run N.")
@click.option(
    "--include-gone",
    is_flag=True,
    help="Also show folders deleted or renamed on the server, and expunged messages (marked with when they went).",
)
@json_option()
@click.pass_context
@with_archive("read", check=_one_moment)
def ls_command(
    ctx: click.Context,
    archive: Archive,
    account: str,
    folder: str | None,
    as_of: str | None,
    run_id: int | None,
    include_gone: bool,
    as_json: bool,
) -> None:
    """List folders and messages of an account, now or as they were at a run or moment."""
    catalog = archive.catalog
    account_id = catalog.account_id(account)
    run = None if account_id is None else resolve_run(catalog, account_id, account, as_of, run_id)
    states = folder_states(catalog, account, folder, run, include_gone)
    when_gone = gone_times(catalog, states)
    if as_json:
        emit_json(
            {
                "account": account,
                "run": run,
                "as_of": as_of,
                "folders": [
                    {
                        "name": s.name,
                        "gone": s.gone,
                        "gone_since_run": s.gone_since_run,
                        "gone_since": s.gone_since,
                        "messages": [placement_dict(m) for m in s.messages],
                        "expunged": [
                            {**placement_dict(m), "gone_since": when_gone.get(m.gone_since_run)} for m in s.expunged
                        ],
                    }
                    for s in states
                ],
            }
        )
        return
    when = "now" if run is None else f"after run {run}"
    click.echo(f"{account} ({when}): {len(states)} folder(s)")
    for state in states:
        size = sum(m.size for m in state.messages)
        gone = f"  (gone since run {state.gone_since_run}, {(state.gone_since or '')[:10]})" if state.gone else ""
        expunged = f"; {len(state.expunged)} expunged" if include_gone else ""
        click.echo(f"{state.name}: {len(state.messages)} message(s), {human_bytes(size)}{expunged}{gone}")
        for m in state.messages:
            click.echo(_row(m))
        for m in state.expunged:
            since = (when_gone.get(m.gone_since_run) or "")[:10]
            click.echo(f"{_row(m)}  [expunged: gone since run {m.gone_since_run}, {since}]")


def _row(m: PlacementRow) -> str:
    flags = " ".join(m.flags) or "-"
    date = (m.internaldate or "")[:19]
    return f"  {m.uid!s:>7}  {date:19}  {flags:24}  {human_bytes(m.size):>9}  {m.subject or ''}"
