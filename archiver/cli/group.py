"""The ``archiver`` click group: commands loaded lazily, errors as one line.

Follows click's documented "Lazily Loading Subcommands" pattern: the group is
given ``name -> "module.attribute"`` and imports a command's module only when
that command runs (or ``--help`` lists it), so a scheduled no-change ``backup``
does not pay for importing Whoosh, Flask and the rest.  Nothing registers
itself at import time.  Packages outside ``archiver`` (the web UI's ``serve``)
contribute commands through the ``archiver.commands`` entry point group, which
is read only when a name is not one of the built-in commands.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

import click

from archiver.errors import ArchiverError
from archiver.logs import mask

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

#: Entry point group through which other packages add ``archiver`` commands.
COMMANDS_GROUP = "archiver.commands"


class ArchiverGroup(click.Group):
    """Turns ArchiverError into one line and an exit code, everywhere; loads commands lazily."""

    def __init__(self, *args: Any, lazy_subcommands: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_subcommands, *_plugin_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name in self.lazy_subcommands:
            command = _load(self.lazy_subcommands[cmd_name])
        elif (entry := _plugin_commands().get(cmd_name)) is not None:
            command = entry.load()
        else:
            return None
        if not isinstance(command, click.Command):
            raise ValueError(f"{cmd_name!r}: {command!r} is not a click command")
        self.commands[cmd_name] = command  # loaded once per process
        return command

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ArchiverError as exc:
            if "--debug" in sys.argv:
                raise
            click.echo(f"archiver: error: {mask(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("archiver: interrupted; committed work is kept, run again to finish", err=True)
            sys.exit(130)


def _load(import_path: str) -> object:
    module_name, attribute = import_path.rsplit(".", 1)
    return getattr(importlib.import_module(module_name), attribute)


def _plugin_commands() -> dict[str, EntryPoint]:
    """The commands other installed packages declare (``[project.entry-points."archiver.commands"]``).

    ``importlib.metadata`` is imported here, not at the top: scanning the installed packages costs a
    whole search's time, and only ``--help`` and a name that is not built in need it.
    """
    from importlib.metadata import entry_points

    return {entry.name: entry for entry in entry_points(group=COMMANDS_GROUP)}
