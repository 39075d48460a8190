"""The ``archiver`` command: a thin shell over library functions.

Expected failures (:class:`archiver.errors.ArchiverError`) become one line on
stderr and a non-zero exit code; a traceback is printed only with ``--debug``.
The commands live one per module in this package (their shared options and
helpers in :mod:`archiver.cli._common`) and are imported only when used, see
:class:`archiver.cli.group.ArchiverGroup`.
"""

from __future__ import annotations

from dataclasses import dataclass

import click

from archiver import __version__
from archiver.cli.group import ArchiverGroup
from archiver.config import Config, find_config_path, load_config
from archiver.logs import setup_logging
from archiver.memory import tune_allocator
from archiver.permissions import protect_new_files

#: Command name -> ``"module.attribute"`` of its click command; the module is imported on first use.
#: Other packages add commands through the ``archiver.commands`` entry point group (the web UI: ``serve``).
COMMAND_MODULES = {
    "auth": "archiver.cli.auth.auth",
    "backup": "archiver.cli.backup.backup",
    "status": "archiver.cli.status.status",
    "verify": "archiver.cli.verify.verify",
    "demo": "archiver.cli.demo.demo",
    "search": "archiver.cli.search.search",
    "reindex": "archiver.cli.reindex.reindex_command",
    "compact-index": "archiver.cli.compact_index.compact_index_command",
    "restore": "archiver.cli.restore.restore",
    "export": "archiver.cli.export.export_command",
    "import": "archiver.cli.import_mail.import_command",
    "ls": "archiver.cli.ls.ls_command",
    "daemon": "archiver.cli.daemon.daemon",
    "sessions": "archiver.cli.sessions.sessions",
    "account": "archiver.cli.account.account",
    "key": "archiver.cli.key.key",
}


@dataclass
class CliState:
    """The group's options, handed to every command as ``ctx.obj``; the config is loaded on first use."""

    config_path: str | None
    debug: bool
    _config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(find_config_path(self.config_path))  # warnings are logged
            protect_new_files(self._config.archive.group_readable)  # before any command creates a file
        return self._config


@click.group(
    cls=ArchiverGroup,
    lazy_subcommands=COMMAND_MODULES,
    context_settings={"help_option_names": ["-h", "--help"]},
)
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


__all__ = ["COMMAND_MODULES", "CliState", "main"]
