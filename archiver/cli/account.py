"""``archiver account add EMAIL``: find an address's server settings, test the login, add the account.

A thin shell: :mod:`archiver.discovery` finds the server, :mod:`archiver.enrollment` plans the
table, tests the login and writes it (the web UI's page does the same through it).  What is
printed is what a person needs next: where the settings came from, what was skipped on the way,
and the command to run after.
"""

from __future__ import annotations

import functools
import shlex
from dataclasses import replace
from pathlib import Path

import click

from archiver.config import PasswordSource, find_config_path
from archiver.discovery.account_toml import AccountEntry, default_name
from archiver.discovery.discover import discover
from archiver.discovery.model import Discovery
from archiver.discovery.presets import PRESETS
from archiver.enrollment import add_account, plan_account
from archiver.errors import ConfigError
from archiver.logs import register_secret


@click.group()
def account() -> None:
    """Add accounts to the config file."""


@account.command("add")
@click.argument("email")
@click.option("--name", metavar="NAME", help="Account name (default: from the address, e.g. bob-example.org).")
@click.option("--protocol", type=click.Choice(["imap", "pop3"]), default="imap", show_default=True)
@click.option("--provider", metavar="NAME", help="Use this provider preset instead of discovering.")
@click.option("--username", metavar="USER", help="Log in as USER instead of what discovery found.")
@click.option("--password-command", metavar="CMD", help="Get the password from CMD's output (no shell).")
@click.option("--password-file", metavar="PATH", type=click.Path(dir_okay=False), help="Get the password from PATH.")
@click.option("--auth", type=click.Choice(["password"]), help="Use a password (app password) with an OAuth2 preset.")
@click.option("--oauth2-client-id", metavar="ID", help="OAuth2: the client id of the application you registered.")
@click.option(
    "--oauth2-client-secret-file",
    metavar="PATH",
    type=click.Path(exists=True, dir_okay=False),
    help="OAuth2: a file holding the client secret (Google requires one).",
)
@click.option("--tls-ca-file", metavar="PATH", type=click.Path(exists=True, dir_okay=False), help="Trust this CA.")
@click.option("--allow-plaintext", is_flag=True, help="Accept a server without TLS (the password travels readable).")
@click.option("--no-login-test", is_flag=True, help="Write the account without logging in first.")
@click.option("--write/--print", "write", default=True, help="Append to the config file (default) or print the table.")
@click.option("--autoconfig-url", "autoconfig_urls", multiple=True, metavar="URL", help="Autoconfig file URL to try.")
@click.option("--dns-server", metavar="IP[:PORT]", help="Name server to ask instead of the system's.")
@click.pass_context
def add(
    ctx: click.Context,
    email: str,
    name: str | None,
    protocol: str,
    provider: str | None,
    username: str | None,
    password_command: str | None,
    password_file: str | None,
    auth: str | None,
    oauth2_client_id: str | None,
    oauth2_client_secret_file: str | None,
    tls_ca_file: str | None,
    allow_plaintext: bool,
    no_login_test: bool,
    write: bool,
    autoconfig_urls: tuple[str, ...],
    dns_server: str | None,
) -> None:
    """Find the server settings for EMAIL, test the login, and add the account to the config file.

    Tries a provider preset (by domain, then by MX), the domain's autoconfig file, then RFC 6186
    SRV records; prefers implicit TLS, then STARTTLS, and refuses a server without TLS unless
    --allow-plaintext.  See docs/providers.md.
    """
    if password_command and password_file:
        raise click.UsageError("give at most one of --password-command, --password-file")
    config_path = find_config_path(ctx.obj.config_path) if write else Path(ctx.obj.config_path or "archiver.toml")
    found = discover(
        email,
        protocol,
        allow_plaintext=allow_plaintext,
        provider=provider,
        autoconfig=autoconfig_urls or None,
        dns_server=dns_server,
    )
    if username:
        found = replace(found, server=replace(found.server, username=username))
    say = functools.partial(click.echo, err=not write)  # with --print, stdout is the table alone
    say(f"Found {found.server.describe()} from {found.origin}.")
    for note in found.notes:
        say(f"  (passed over: {note})")
    for line in PRESETS[found.preset].advice() if found.preset else ():
        say(f"Note: {line}")
    name = name or default_name(found.email)
    oauth2 = found.server.auth == "oauth2" and auth != "password"
    typed_password = not (oauth2 or password_command or password_file)  # asked for, kept in NAME.password
    if password_command:
        secret: tuple[str, str] | None = ("password_command", password_command)
    elif password_file:
        secret = ("password_file", str(Path(password_file).resolve()))
    else:
        secret = None if oauth2 else ("password_file", f"{name}.password")
    extra: tuple[tuple[str, object], ...] = ()
    if oauth2:
        extra = _oauth2_keys(found, oauth2_client_id, oauth2_client_secret_file)
    if tls_ca_file:
        extra += (("tls_ca_file", str(Path(tls_ca_file).resolve())),)
    plan = plan_account(found, AccountEntry(name, secret, auth, extra), config_path, write=write)  # refusals first

    password = None
    if oauth2:
        say("It signs in with OAuth2: there is no token yet, so the login is tested by `archiver auth`.")
    elif typed_password and (write or not no_login_test):
        password = _typed_password(name)
    elif not no_login_test:
        password = _password_from(name, password_command, password_file)
    created = add_account(plan, password, login=not no_login_test, write=write)
    if password is not None and not no_login_test:
        say(f"Logged in to {found.server.describe()} as {plan.account.username}.")
    if not write:
        if typed_password:
            click.echo(f"# Put the password in {name}.password next to the config file (chmod 600).")
        click.echo(plan.table, nl=False)
        return
    where = f" (the password in {created}, mode 0600)" if created else ""
    click.echo(f"Added account {name!r} to {config_path}{where}.")
    following = "auth" if oauth2 else "backup --account"
    click.echo(f"Next: archiver {following} {shlex.quote(name)}")


def _oauth2_keys(found: Discovery, client_id: str | None, secret_file: str | None) -> tuple[tuple[str, object], ...]:
    """The OAuth2 keys of the table: the user's own client id (and secret); without one, say what to do."""
    if not client_id:
        raise ConfigError(
            f"{found.preset or found.server.host} signs in with OAuth2: pass --oauth2-client-id ID "
            "(and --oauth2-client-secret-file PATH for Google) of the application you registered "
            "(docs/oauth2.md), or --auth password for an app password where the provider allows one"
        )
    keys: tuple[tuple[str, object], ...] = (("oauth2_client_id", client_id),)
    if secret_file:
        keys += (("oauth2_client_secret_file", str(Path(secret_file).resolve())),)
    return keys


def _typed_password(account: str) -> str:
    typed = click.prompt(f"Password for {account}", hide_input=True, default="", show_default=False, err=True)
    if not typed:
        raise ConfigError(f"account {account!r}: no password typed")
    register_secret(typed)
    return typed


def _password_from(account: str, password_command: str | None, password_file: str | None) -> str:
    if password_command:
        return PasswordSource("command", command=password_command, account=account, key="--password-command").resolve()
    return PasswordSource("file", file=Path(password_file or ""), account=account, key="--password-file").resolve()
