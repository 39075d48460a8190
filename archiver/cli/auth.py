"""``archiver auth ACCOUNT``: sign an account in with OAuth2 once and keep its refresh token.

The flow runs here, in the terminal (the web UI will start the same flows);
what it prints is the URL, the code and where the token went, never a token.
"""

from __future__ import annotations

import click

from archiver.cli import register
from archiver.errors import ConfigError
from archiver.oauth.providers import FLOWS
from archiver.oauth.store import TokenFile


@click.command()
@click.argument("account")
@click.option(
    "--flow",
    type=click.Choice(FLOWS),
    help="device: a URL and a code to enter in any browser, anywhere; loopback: a browser on this machine (or "
    "one reaching it through ssh -L) comes back to 127.0.0.1. Default: the provider's (Google: loopback).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="loopback flow: the local port to listen on; 0 picks a free one. Fix it to forward it over SSH.",
)
@click.pass_context
def auth(ctx: click.Context, account: str, flow: str | None, port: int) -> None:
    """Authorise ACCOUNT with OAuth2 and store its refresh token (in a 0600 file; never printed)."""
    config = ctx.obj.config
    settings = config.account(account).oauth2
    if settings is None:
        raise ConfigError(f'account {account!r} signs in with a password; set auth = "oauth2" to use OAuth2')
    client = settings.client()
    flow = flow or client.endpoints.default_flow
    if port and flow != "loopback":
        raise click.UsageError("--port is only for --flow loopback")
    if flow == "device":
        from archiver.oauth.device import device_flow

        token = device_flow(client, click.echo)
    else:
        from archiver.oauth.loopback import loopback_flow

        token = loopback_flow(client, click.echo, port=port)
    store = TokenFile(settings.token_path(config.archive.path), account)
    store.save(token)
    click.echo(f"account {account}: authorised; the token is stored in {store.path}")
    if not token.refresh_token:
        click.echo(
            f"warning: the provider gave no refresh token, so this lasts only until the access token expires; "
            f"check that the scopes include offline access, then run `archiver auth {account}` again",
            err=True,
        )


register(auth)
