"""``archiver serve``: the web UI under waitress (Flask's dev server only with --debug).

The web package contributes this command to ``archiver`` through the
``archiver.commands`` entry point (pyproject.toml): ``web`` imports
``archiver``, never the reverse.
"""

from __future__ import annotations

import getpass

import click
import waitress

from archiver.errors import ConfigError
from web import close_app, create_app
from web.auth import hash_password as make_hash
from web.serving import waitress_options


@click.command()
@click.option("--listen", help="HOST:PORT to listen on (default: [web] listen, else 127.0.0.1:8080).")
@click.option(
    "--hash-password", is_flag=True, help="Ask for a password, print its argon2 hash for [[web.users]], exit."
)
@click.option("--threads", default=8, show_default=True, help="Worker threads.")
@click.pass_context
def serve(ctx: click.Context, listen: str | None, hash_password: bool, threads: int) -> None:
    """Serve the web UI: browse, search, read, download and restore archived mail; back up now."""
    if hash_password:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Again: "):
            raise ConfigError("the two passwords differ")
        click.echo(make_hash(password))
        return
    config = ctx.obj.config
    if not config.web.users:
        raise ConfigError(
            f"{config.source}: web.users: no user may log in; add a [[web.users]] table "
            "(hash a password with: archiver serve --hash-password)"
        )
    app = create_app(config, listen=listen)
    host, _, port = (listen or config.web.listen).rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"--listen: expected HOST:PORT, got {listen!r}")
    click.echo(f"serving the archive at http://{host}:{port}/ (Ctrl-C stops)")
    try:
        if ctx.obj.debug:
            app.run(host=host, port=int(port), debug=True, use_reloader=False)
        else:
            options = waitress_options(config.web)
            waitress.serve(app, host=host.strip("[]"), port=int(port), threads=threads, ident="archiver", **options)
    finally:  # web-started backups run in their own session: stop them (committed work is kept)
        close_app(app)
