"""Login, logout, server-side sessions, CSRF tokens and the login back-off.

A login starts a server-side session (:mod:`web.sessions`) whose token is the
only thing of it in the cookie; every request checks it.  Failed logins back
off per client and per user (:mod:`web.throttle`).  An unknown user name costs
the same argon2 verification as a known one, so response times do not reveal
which names exist.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, Flask, abort, current_app, g, redirect, render_template, request, session, url_for

from archiver.config import WebUser
from web.context import app_config
from web.sessions import SessionStore
from web.throttle import Key, LoginThrottle

log = logging.getLogger("archiver.web")
bp = Blueprint("auth", __name__)
_hasher = PasswordHasher()
PUBLIC_ENDPOINTS = {"auth.login", "static", "browse.cid"}  # cid: a signed per-image token instead
KNOWN_DEVICE_COOKIE = "archiver_known"
KNOWN_DEVICE_SECONDS = 365 * 86400


def hash_password(password: str) -> str:
    """An argon2id hash for ``[[web.users]] password_hash``."""
    return _hasher.hash(password)


def init_app(app: Flask, sessions: SessionStore) -> None:
    """The app's session store, login throttle and dummy hash (see :func:`_verify`)."""
    users = app.extensions["archiver_config"].web.users
    try:
        hasher = PasswordHasher.from_parameters(extract_parameters(users[0].password_hash)) if users else _hasher
    except InvalidHashError:
        hasher = _hasher
    app.extensions["archiver_sessions"] = sessions
    app.extensions["archiver_login_throttle"] = LoginThrottle()
    app.extensions["archiver_dummy_hash"] = hasher.hash(secrets.token_urlsafe(16))


def _users() -> dict[str, WebUser]:
    return {u.name: u for u in app_config().web.users}


def sessions() -> SessionStore:
    return current_app.extensions["archiver_sessions"]


def load_user() -> Any:
    """Before every request: the user of a live server-side session, or a redirect to the login page."""
    g.user = None
    token = session.get("sid")
    if token:
        g.user = sessions().check(token, _users())
        if g.user is None:
            session.clear()  # logged out elsewhere, expired, revoked, or the password changed
    if g.user is None and request.endpoint not in PUBLIC_ENDPOINTS:
        if request.endpoint is None:
            abort(404)
        return redirect(url_for("auth.login", next=request.path))
    return None


def login_required(view: Any) -> Any:
    """Belt and braces on top of :func:`load_user` for views that hand out data."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.get("user") is None:
            abort(401)
        return view(*args, **kwargs)

    return wrapped


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Every state-changing request carries the session's token (login included)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, "missing or stale form token: reload the page and try again")


def safe_next(target: str) -> str | None:
    """``target`` if it is a path of this site, else None: the only redirect a login may follow.

    Browsers drop tabs and newlines from URLs and read ``\\`` as ``/``, so
    ``/%09/evil.example`` or ``/\\evil.example`` would become the
    protocol-relative ``//evil.example``: any control character, white space
    or backslash refuses the target, as does anything with a scheme or host.
    """
    if not target.startswith("/") or len(target) > 2000:
        return None
    if any(c == "\\" or c.isspace() or not c.isprintable() for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return None
    return target


def _verify(user: WebUser | None, password: str) -> bool:
    """Check the password; an unknown user is checked against a dummy hash of the same cost (no timing oracle)."""
    stored = user.password_hash if user is not None else current_app.extensions["archiver_dummy_hash"]
    try:
        ok = _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        ok = False
    return ok and user is not None


def _device_mark(name: str) -> str:
    """The known-device cookie's value for ``name``: proof this browser logged in as that user before."""
    key = current_app.config["SECRET_KEY"]
    return hmac.new(key, f"known-device:{name}".encode(), hashlib.sha256).hexdigest()[:32]


def _throttle_keys(name: str) -> list[Key]:
    keys: list[Key] = [("client", request.remote_addr or "?")]
    if not hmac.compare_digest(request.cookies.get(KNOWN_DEVICE_COOKIE, ""), _device_mark(name)):
        keys.append(("user", name))
    return keys


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        return render_template("login.html", error=None)
    throttle: LoginThrottle = current_app.extensions["archiver_login_throttle"]
    name = request.form.get("username", "")[:200]
    keys = _throttle_keys(name)
    wait = throttle.wait_for(keys)
    if wait > 0:
        seconds = math.ceil(wait)
        error = f"Too many attempts. Wait {seconds} s, then try again."
        return render_template("login.html", error=error), 429, {"Retry-After": str(seconds)}
    user = _users().get(name)
    if not _verify(user, request.form.get("password", "")):
        throttle.failed(keys)
        log.warning("failed web login for user %r from %s", name, request.remote_addr)
        return render_template("login.html", error="Wrong user name or password."), 401
    assert user is not None
    throttle.succeeded(keys)
    session.clear()
    session["sid"] = sessions().start(user)
    session.permanent = True
    csrf_token()
    response = redirect(safe_next(request.args.get("next", "")) or url_for("browse.accounts"))
    response.set_cookie(
        KNOWN_DEVICE_COOKIE,
        _device_mark(name),
        max_age=KNOWN_DEVICE_SECONDS,
        httponly=True,
        samesite="Lax",
        secure=current_app.session_interface.get_cookie_secure(current_app),
    )
    return response


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    token = session.get("sid")
    if token:
        sessions().end(token)
    session.clear()
    return redirect(url_for("auth.login"))
