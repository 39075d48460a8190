"""``archiver sessions``: list and revoke web UI login sessions (kept in the catalog, see web/sessions.py)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from archiver.catalog import Catalog
from archiver.cli._common import emit_json, json_option
from archiver.config import Config
from archiver.errors import CatalogError, ConfigError
from archiver.times import epoch_iso


def _catalog(config: Config) -> Catalog:
    """The archive's catalog (migrated, so an archive older than the sessions table works); never a new archive."""
    root = Path(config.archive.path)
    if not (root / Catalog.FILENAME).exists():
        raise CatalogError(f"no archive at {root}: run a backup first")
    return Catalog.open(root)


@click.group()
def sessions() -> None:
    """Web UI login sessions: who is logged in, and ending their sessions now."""


@sessions.command(name="list")
@json_option()
@click.pass_context
def list_sessions(ctx: click.Context, as_json: bool) -> None:
    """Live sessions per user: when they logged in and were last seen (UTC)."""
    config = ctx.obj.config
    now = time.time()
    with _catalog(config) as catalog:
        catalog.purge_web_sessions(now - config.web.session_lifetime, now - config.web.session_idle_timeout)
        rows = catalog.web_sessions()
    found = [
        {"user": row["user"], "created": epoch_iso(row["created_at"]), "last_seen": epoch_iso(row["last_seen_at"])}
        for row in rows
    ]
    if as_json:
        emit_json(found)
        return
    if not found:
        click.echo("no live web sessions")
    for row in found:
        click.echo(f"{row['user']:<20} logged in {row['created']}  last seen {row['last_seen']}")


@sessions.command()
@click.argument("users", nargs=-1, metavar="USER...")
@click.option("--all", "everyone", is_flag=True, help="End every session of every user.")
@click.pass_context
def revoke(ctx: click.Context, users: tuple[str, ...], everyone: bool) -> None:
    """End sessions now: the user must log in again (their next request goes to the login page)."""
    config = ctx.obj.config
    if everyone == bool(users):
        raise click.UsageError("name the users whose sessions end, or give --all")
    known = {u.name for u in config.web.users}
    with _catalog(config) as catalog:
        if everyone:
            click.echo(f"ended {catalog.end_web_sessions()} session(s)")
            return
        with catalog.transaction():
            live = {r["user"] for r in catalog.web_sessions()}
            unknown = [name for name in users if name not in known and name not in live]
            if unknown:
                raise ConfigError(f"{config.source}: web.users: no user named {', '.join(map(repr, unknown))}")
            for name in users:
                click.echo(f"ended {catalog.end_web_sessions(user=name)} session(s) of {name}")
