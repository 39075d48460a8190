"""``archiver daemon``: scheduled backups and the web UI in one process (see :mod:`archiver.daemon.service`)."""

from __future__ import annotations

import sys

import click
from click.core import ParameterSource

from archiver.config import find_config_path
from archiver.daemon.child import SubprocessRunner
from archiver.daemon.scheduler import BackupScheduler
from archiver.daemon.service import Daemon, read_config
from archiver.errors import ConfigError
from archiver.logs import setup_logging


@click.command()
@click.option("--no-web", is_flag=True, help="Run the scheduler only (no web UI, no /metrics).")
@click.option("--listen", metavar="HOST:PORT", help="Web UI address (default: [web] listen).")
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Log line format."
)
@click.option(
    "--once",
    metavar="ACCOUNT",
    help="Run one scheduled backup of ACCOUNT now, with alerts and health-check ping, then exit (systemd timers).",
)
@click.pass_context
def daemon(ctx: click.Context, no_web: bool, listen: str | None, log_format: str, once: str | None) -> None:
    """Run backups on schedule and serve the web UI, until SIGTERM; SIGHUP reloads the config."""
    parent = ctx.parent
    level = "INFO"
    if ctx.obj.debug:
        level = "DEBUG"
    elif parent is not None and parent.get_parameter_source("log_level") != ParameterSource.DEFAULT:
        level = parent.params["log_level"]
    setup_logging(level, log_format)
    path = find_config_path(ctx.obj.config_path)
    config, text = read_config(path)
    if listen is not None:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--listen: expected HOST:PORT, got {listen!r}")
    scheduler = BackupScheduler(config, text, SubprocessRunner(level, log_format))
    if once is not None:
        config.account(once)
        outcome = scheduler.run_now(once)
        sys.exit(0 if outcome.status in ("ok", "skipped") else 1)
    Daemon(path, config, text, scheduler, listen).run(web=not no_web)
