"""What the command modules share: output helpers, option groups and :func:`with_archive`.

Modelled on borg's ``archiver/_common.py``: a command names the access it needs
(``@with_archive("write")``) instead of opening and closing the archive by hand,
and options that several commands take are defined once here.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import click

from archiver.archive import Archive
from archiver.config import Config

F = TypeVar("F", bound=Callable[..., Any])

#: How a command opens the archive: ``write`` creates it when missing (backup, restore, import, reindex);
#: ``read`` opens it read-only (search, export, ls); ``inspect`` writes only if this user may
#: (status, verify: an operator in the archive's group can read what the service user writes).
ArchiveAccess = Literal["write", "read", "inspect"]


def open_archive(config: Config, access: ArchiveAccess) -> Archive:
    """The archive of ``config`` opened for ``access`` (see :data:`ArchiveAccess`)."""
    if access == "inspect":
        return Archive.for_reading(config.archive)
    return Archive(config.archive, readonly=access == "read")


def with_archive(access: ArchiveAccess = "write", check: Callable[..., object] | None = None) -> Callable[[F], F]:
    """Open the configured archive for the command, pass it as ``archive=``, close it when the command ends.

    ``check(ctx, **params)`` runs first and raises for options that cannot work together or
    name an unknown account: a typo must not create an archive (``write`` makes one when
    missing) nor be reported as a missing archive.  Use it under ``@click.pass_context``;
    the config comes from ``ctx.obj`` (:class:`archiver.cli.CliState`).
    """

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(ctx: click.Context, *args: Any, **params: Any) -> Any:
            if check is not None:
                check(ctx, **params)
            with open_archive(ctx.obj.config, access) as archive:
                return command(ctx, *args, archive=archive, **params)

        return wrapper  # type: ignore[return-value]

    return decorate


def human_bytes(count: float) -> str:
    """A byte count for people: ``512 B``, ``1.5 MB`` (binary units, as ``du -h``)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(count) < 1024 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"


def emit_json(data: object) -> None:
    """``--json`` output: indented, UTF-8 kept as is, dates and paths as strings."""
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def _options(*options: Callable[[F], F]) -> Callable[[F], F]:
    """Apply ``options`` in the order written (click lists them in --help in decoration order)."""

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def json_option(help: str = "Machine-readable output.") -> Callable[[F], F]:
    """``--json``: print the command's result as JSON (:func:`emit_json`) instead of lines for people."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def account_option(help: str, required: bool = False) -> Callable[[F], F]:
    """``--account NAME``: the one account the command works on."""
    return click.option("--account", "account", required=required, metavar="NAME", help=help)


#: ``--account NAME`` (repeatable): only these accounts; none given means all (backup, search).
accounts_option = click.option(
    "--account", "accounts", multiple=True, metavar="NAME", help="Only this account (repeatable)."
)


def as_of_option(help: str) -> Callable[[F], F]:
    """``--as-of DATE``: a point in time the catalog answers for (``help`` words it for the command)."""
    return click.option("--as-of", "as_of", metavar="DATE", help=help)


def run_option(help: str) -> Callable[[F], F]:
    """``--run N``: the state after backup run N."""
    return click.option("--run", "run_id", type=int, metavar="N", help=help)


#: What ``restore`` and ``export`` select (an :class:`archiver.restore.plan.Scope`); ``ls`` takes
#: ``--as-of`` and ``--run`` from here too.
scope_options = _options(
    account_option("Source account (required unless --message alone)."),
    click.option("--folder", "folders", multiple=True, metavar="NAME", help="A folder (repeatable)."),
    click.option(
        "--message",
        "messages",
        multiple=True,
        metavar="ID",
        help="A blob id (sha256) or placement id (repeatable).",
    ),
    as_of_option("State as of a date or date-time (ISO 8601, local time)."),
    run_option("State after backup run N."),
)
