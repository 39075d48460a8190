"""``/accounts/add``: the web twin of ``archiver account add``, for admins.

Three steps on plain forms (the pages run no script): the address; what discovery found, with
the name, username and password to use; the result.  The finding, the table, the login test and
the write are the library's (:mod:`archiver.discovery`, :mod:`archiver.enrollment`), exactly as
the command does them, so the page holds no rule of its own.  The settings found travel from the
second step to the third as form fields: only an admin reaches this page, and whatever comes back
is checked again (host, port, security) and read back by the config reader before use.

Inside ``archiver daemon`` the daemon re-reads its config once the account is written (as on
SIGHUP), so the account is scheduled and shown at once; ``archiver serve`` keeps the config it
started with, and the result page says so.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, g, render_template, request

from archiver.discovery.account_toml import AccountEntry, default_name
from archiver.discovery.discover import discover
from archiver.discovery.model import PROTOCOL_NAMES, SECURITY_RANK, Discovery, Server, is_hostname
from archiver.discovery.presets import PRESETS
from archiver.enrollment import add_account, plan_account
from archiver.errors import ArchiverError, DiscoveryError
from archiver.logs import register_secret
from web.auth import login_required
from web.context import app_config

bp = Blueprint("accounts_add", __name__)
#: Tests point discovery at loopback servers with these app.config keys (the command's --autoconfig-url, --dns-server).
AUTOCONFIG_KEY = "DISCOVERY_AUTOCONFIG_URLS"
DNS_SERVER_KEY = "DISCOVERY_DNS_SERVER"


@bp.route("/accounts/add", methods=["GET"])
@login_required
def start() -> Any:
    _admin_only()
    return render_template("account_add.html", step="find", form={})


@bp.route("/accounts/add/find", methods=["POST"])
@login_required
def find() -> Any:
    _admin_only()
    form = request.form
    try:
        found = discover(
            form.get("email", ""),
            form.get("protocol", "imap"),
            allow_plaintext=form.get("allow_plaintext") == "on",
            autoconfig=current_app.config.get(AUTOCONFIG_KEY),
            dns_server=current_app.config.get(DNS_SERVER_KEY),
        )
    except ArchiverError as exc:
        return render_template("account_add.html", step="find", form=form, error=str(exc)), 422
    return _confirm(found, {"name": default_name(found.email), "username": found.server.username})


@bp.route("/accounts/add/save", methods=["POST"])
@login_required
def save() -> Any:
    _admin_only()
    form = request.form
    found = _found_from(form)
    password = form.get("password", "")
    if password:
        register_secret(password)
    oauth2 = found.server.auth == "oauth2"
    name = form.get("name", "").strip()
    if oauth2:
        client_id, secret_file = (form.get(k, "").strip() for k in ("oauth2_client_id", "oauth2_client_secret_file"))
        extra: tuple[tuple[str, object], ...] = (("oauth2_client_id", client_id),) if client_id else ()
        extra += (("oauth2_client_secret_file", secret_file),) if secret_file else ()
        secret = None
    else:
        extra, secret = (), ("password_file", f"{name}.password")
    ca_file = form.get("tls_ca_file", "").strip()
    if ca_file:
        extra += (("tls_ca_file", ca_file),)
    config_path = app_config().source
    try:
        if not oauth2 and not password:
            raise DiscoveryError("type the account's password: it is tested, then kept in a 0600 file")
        plan = plan_account(found, AccountEntry(name, secret, None, extra), config_path, write=True)
        created = add_account(plan, None if oauth2 else password, login=not oauth2)
    except ArchiverError as exc:
        return _confirm(found, form, error=str(exc)), 422
    reload_config = current_app.extensions.get("archiver_reload_config")
    if reload_config is not None:
        reload_config()
    return render_template(
        "account_add.html",
        step="done",
        name=name,
        config_path=config_path,
        password_file=created,
        oauth2=oauth2,
        reloading=reload_config is not None,
    )


def _confirm(found: Discovery, form: Any, error: str | None = None) -> Any:
    return render_template(
        "account_add.html", step="confirm", found=found, form=form, error=error, preset=PRESETS.get(found.preset or "")
    )


def _found_from(form: Any) -> Discovery:
    """The settings carried from the second step, checked again: a bad one is a 400, not a table."""
    protocol, security, host, port = (form.get(k, "") for k in ("protocol", "security", "host", "port"))
    auth = form.get("auth", "password")
    provider = form.get("oauth2_provider") or None
    preset = form.get("preset") or None
    valid = (
        protocol in PROTOCOL_NAMES
        and security in SECURITY_RANK
        and is_hostname(host)
        and port.isascii()
        and port.isdigit()
        and 1 <= int(port) <= 65535
        and auth in ("password", "oauth2")
        and (preset is None or preset in PRESETS)
    )
    if not valid:
        abort(400, "the settings found were altered; start again from the address")
    server = Server(protocol, host, int(port), security, form.get("username", "").strip(), auth, provider)
    return Discovery(form.get("email", ""), server, form.get("origin", "")[:300], preset)


def _admin_only() -> None:
    if not g.user.admin:
        abort(403)
