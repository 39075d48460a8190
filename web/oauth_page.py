"""``/oauth/<account>``: an admin connects an ``auth = "oauth2"`` account from the browser.

Two ways, whichever the provider allows: the device flow, and the redirect
flow with PKCE back to this web UI's own ``/oauth/callback``.

The same flow as ``archiver auth NAME`` (:mod:`archiver.oauth.device`), cut
into steps a page can drive: *Connect* (a POST with the form token) asks the
provider for a code; the page shows the URL and the code and reloads itself
every poll interval; each load polls the provider once at most (never faster
than the provider asked, so reloading by hand cannot earn a ``slow_down``); the
approved grant is stored in the account's token file exactly as the command
stores it.  The pending device code lives in the server's memory only (it is a
credential until it expires), never in the page or the cookie.

The redirect flow (*Connect in this browser*, for providers with an authorize
URL, such as Google) sends the admin's browser to the provider with a fresh
``state`` and an S256 challenge; the provider sends it back to
``/oauth/callback``, which must be registered with the provider as a redirect
URI (the page shows it; Google accepts ``http`` only for localhost).  The
verifier stays in the server's memory, bound to the state and the browser
session that started it, for :data:`REDIRECT_TIMEOUT` seconds.  ``archiver auth NAME`` (the
loopback flow) remains the way when the web UI cannot be registered.  Only
admins see these pages: a grant gives access to the whole mailbox.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, abort, current_app, flash, g, redirect, render_template, request, session, url_for

from archiver.config import AccountConfig
from archiver.errors import ArchiverError
from archiver.oauth.store import StoredToken, TokenFile
from web.auth import login_required
from web.context import app_config

bp = Blueprint("oauth", __name__)
log = logging.getLogger("archiver.web")


REDIRECT_TIMEOUT = 600.0  # seconds a started redirect flow waits for the browser to come back


@dataclass
class PendingRedirect:
    """A redirect flow between the trip to the provider and the callback, keyed by its ``state``."""

    account: str
    started_by: str
    session_id: str  # the browser session that started it: only that one may finish it
    verifier: str
    redirect_uri: str
    expires: float  # time.monotonic()


@dataclass
class PendingFlow:
    """A device code waiting for the user's approval at the provider."""

    challenge: Any  # archiver.oauth.device.DeviceChallenge (imported late: authlib only when used)
    started_by: str
    next_poll: float  # time.monotonic()
    error: str | None = None


def init_app(app: Flask) -> None:
    """The pending flows, by account, and their lock (its own: a poll waits on the provider)."""
    app.extensions["archiver_oauth_flows"] = {}
    app.extensions["archiver_oauth_redirects"] = {}
    app.extensions["archiver_oauth_lock"] = threading.Lock()


def _flows() -> dict[str, PendingFlow]:
    return current_app.extensions["archiver_oauth_flows"]


def _lock() -> threading.Lock:
    return current_app.extensions["archiver_oauth_lock"]


def _account(name: str) -> AccountConfig:
    """The oauth2 account called ``name``, for an admin; 403 for anyone else, 404 for no such account."""
    if not g.user.admin:
        abort(403)
    account = next((a for a in app_config().accounts if a.name == name), None)
    if account is None or account.oauth2 is None:
        abort(404)
    return account


def _token_file(account: AccountConfig) -> TokenFile:
    assert account.oauth2 is not None
    return TokenFile(account.oauth2.token_path(Path(app_config().archive.path)), account.name)


@bp.route("/oauth/<account>")
@login_required
def page(account: str) -> Any:
    """The account's OAuth2 state; while a code is pending, poll once (when due) and show it."""
    settings = _account(account)
    store = _token_file(settings)
    with _lock():
        flow = _flows().get(account)
        if flow is not None and flow.error is None and time.monotonic() >= flow.next_poll:
            _poll(settings, store, flow)
        flow = _flows().get(account)
        error = flow.error if flow else None
        if error:
            _flows().pop(account, None)
            flow = None
    oauth = settings.oauth2
    assert oauth is not None
    saved = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(store.path.stat().st_mtime)) if store.exists() else None
    return render_template(
        "oauth.html",
        account=account,
        command=oauth.token_command is not None,
        device=oauth.endpoints is not None and oauth.endpoints.device_url is not None,
        redirect=oauth.endpoints is not None and oauth.endpoints.authorize_url is not None,
        callback=url_for("oauth.callback", _external=True),
        provider=oauth.provider,
        saved=saved,
        token_path=store.path,
        flow=flow,
        error=error,
        refresh=max(int(flow.next_poll - time.monotonic()) + 1, 1) if flow else None,
    )


@bp.route("/oauth/<account>/connect", methods=["POST"])
@login_required
def connect(account: str) -> Any:
    """Ask the provider for a device code (replacing any pending one) and show it."""
    settings = _account(account)
    assert settings.oauth2 is not None
    from archiver.oauth.device import begin_device_flow

    try:
        challenge = begin_device_flow(settings.oauth2.client())
    except ArchiverError as exc:
        flash(str(exc))
        return redirect(url_for("oauth.page", account=account))
    with _lock():
        _flows()[account] = PendingFlow(challenge, g.user.name, time.monotonic() + challenge.interval)
    log.info("web: %s started the OAuth2 device flow for account %s", g.user.name, account)
    return redirect(url_for("oauth.page", account=account))


@bp.route("/oauth/<account>/cancel", methods=["POST"])
@login_required
def cancel(account: str) -> Any:
    _account(account)
    with _lock():
        _flows().pop(account, None)
    return redirect(url_for("oauth.page", account=account))


@bp.route("/oauth/<account>/authorize")
@login_required
def authorize(account: str) -> Any:
    """Start the redirect flow: off to the provider (a link, not a form: the CSP keeps forms on this site)."""
    settings = _account(account)
    assert settings.oauth2 is not None
    from authlib.common.security import generate_token

    from archiver.oauth.loopback import authorization_url

    state, verifier = generate_token(32), generate_token(64)
    redirect_uri = url_for("oauth.callback", _external=True)
    try:
        url = authorization_url(settings.oauth2.client(), redirect_uri, state, verifier)
    except ArchiverError as exc:
        flash(str(exc))
        return redirect(url_for("oauth.page", account=account))
    now = time.monotonic()
    with _lock():
        pending = current_app.extensions["archiver_oauth_redirects"]
        for old in [key for key, item in pending.items() if item.expires < now]:
            del pending[old]
        pending[state] = PendingRedirect(
            account, g.user.name, session.get("sid", ""), verifier, redirect_uri, now + REDIRECT_TIMEOUT
        )
    log.info("web: %s started the OAuth2 redirect flow for account %s", g.user.name, account)
    return redirect(url)


@bp.route("/oauth/callback")
@login_required
def callback() -> Any:
    """The provider sends the browser back here: check the state, exchange the code, store the grant."""
    if not g.user.admin:
        abort(403)
    state = request.args.get("state", "")
    with _lock():
        flow = current_app.extensions["archiver_oauth_redirects"].pop(state, None)
    if flow is None or not flow.session_id or flow.session_id != session.get("sid") or flow.expires < time.monotonic():
        abort(400, "this sign-in answer is unknown, expired or someone else's: start the connection again")
    settings = _account(flow.account)
    assert settings.oauth2 is not None
    from archiver.oauth.loopback import finish_redirect

    store = _token_file(settings)
    query = {key: request.args[key] for key in ("code", "error") if key in request.args}
    try:
        token = finish_redirect(settings.oauth2.client(), query, flow.verifier, flow.redirect_uri)
        store.save(token)
    except ArchiverError as exc:
        flash(str(exc))
        return redirect(url_for("oauth.page", account=flow.account))
    _connected(settings.name, store, token, flow.started_by)
    return redirect(url_for("oauth.page", account=flow.account))


def _poll(settings: AccountConfig, store: TokenFile, flow: PendingFlow) -> None:
    """One poll of the provider; on approval the grant is saved and the flow ends (called under the lock)."""
    assert settings.oauth2 is not None
    from archiver.oauth.device import poll_device_flow

    try:
        token = poll_device_flow(settings.oauth2.client(), flow.challenge)
    except ArchiverError as exc:
        flow.error = str(exc)
        return
    flow.next_poll = time.monotonic() + flow.challenge.interval
    if token is None:
        return
    try:
        store.save(token)
    except ArchiverError as exc:
        flow.error = str(exc)
        return
    _flows().pop(settings.name, None)
    _connected(settings.name, store, token, flow.started_by)


def _connected(account: str, store: TokenFile, token: StoredToken, started_by: str) -> None:
    log.info("web: account %s authorised for OAuth2 (started by %s); token file %s", account, started_by, store.path)
    flash(f"Account {account} is connected; the token is stored in {store.path}.")
    if not token.refresh_token:
        flash(
            "The provider gave no refresh token, so this lasts only until the access token expires; check that the "
            "scopes include offline access and connect again."
        )
