"""The ``archiver`` command: a thin shell over library functions.

Expected failures (:class:`archiver.errors.ArchiverError`) become one line on
stderr and a non-zero exit code; a traceback is printed only with ``--debug``.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from archiver import __version__
from archiver.config import Config, find_config_path, load_config
from archiver.errors import ArchiverError
from archiver.logs import mask, setup_logging
from archiver.memory import tune_allocator
from archiver.permissions import protect_new_files

log = logging.getLogger("archiver.cli")


@dataclass
class CliState:
    config_path: str | None
    debug: bool
    _config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(find_config_path(self.config_path))  # warnings are logged
            protect_new_files(self._config.archive.group_readable)  # before any command creates a file
        return self._config


class ArchiverGroup(click.Group):
    """Turns ArchiverError into one line and an exit code, everywhere; loads commands lazily.

    Command ``NAME`` lives in ``archiver/cli/<module>.py`` and is imported only when
    it runs (or for ``--help``), so a scheduled no-change ``backup`` does not pay for
    importing Whoosh, Flask and the rest (that was 1.3 s of a 2 s run).
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            importlib.import_module(f"archiver.cli.{COMMAND_MODULES[cmd_name]}")
        return self.commands.get(cmd_name)

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


@click.group(cls=ArchiverGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    envvar="ARCHIVER_CONFIG",
    help="Config file (default: $ARCHIVER_CONFIG, ./archiver.toml, /etc/archiver/config.toml).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option(
    "--log-level",
    default="WARNING",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.version_option(__version__, prog_name="archiver")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, debug: bool, log_level: str) -> None:
    """Back up, search and restore mailboxes."""
    setup_logging("DEBUG" if debug else log_level)
    tune_allocator()
    ctx.obj = CliState(config_path, debug)


def _state(ctx: click.Context) -> CliState:
    return ctx.find_object(CliState)


def register(command: click.Command) -> None:
    """Commands live in their own modules (archiver/cli/…); they register here."""
    main.add_command(command)


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(count) < 1024 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"


def emit_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


# Command name -> its module in archiver/cli/; each registers itself with register().
COMMAND_MODULES = {
    "auth": "auth",
    "backup": "backup",
    "status": "status",
    "verify": "verify",
    "demo": "demo",
    "search": "search",
    "reindex": "reindex",
    "serve": "serve",
    "restore": "restore",
    "export": "export",
    "import": "import_mail",
    "ls": "ls",
    "daemon": "daemon",
    "sessions": "sessions",
}

__all__ = ["CliState", "Path", "emit_json", "human_bytes", "main", "register"]
