"""``archiver ls``: the content of an account or folder as it is now, after a run, or at a moment."""

from __future__ import annotations

import click

from archiver.archive import Archive
from archiver.catalog import PlacementRow
from archiver.catalog.as_of import folder_states, gone_times, placement_dict, resolve_run
from archiver.cli import emit_json, human_bytes, register


@click.command(name="ls")
@click.option("--account", "account", required=True, metavar="NAME", help="The account to list.")
@click.option("--folder", "folder", metavar="NAME", help="Only this folder (shown even if gone from the server).")
@click.option("--as-of", "as_of", metavar="DATE", help="As it was at a date or date-time (ISO 8601, local time).")
@click.option("--run", "run_id", type=int, metavar="N", help="As it was after backup run N.")
@click.option(
    "--include-gone",
    is_flag=True,
    help="Also show folders deleted or renamed on the server, and expunged messages (marked with when they went).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def ls_command(
    ctx: click.Context,
    account: str,
    folder: str | None,
    as_of: str | None,
    run_id: int | None,
    include_gone: bool,
    as_json: bool,
) -> None:
    """List folders and messages of an account, now or as they were at a run or moment."""
    if as_of is not None and run_id is not None:
        raise click.UsageError("give --as-of or --run, not both")
    config = ctx.obj.config
    with Archive(config.archive, readonly=True) as archive:
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


register(ls_command)
