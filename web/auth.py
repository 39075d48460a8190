"""Login, logout, sessions, CSRF tokens and the login rate limit."""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections import defaultdict, deque
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for

from archiver.config import WebUser

log = logging.getLogger("archiver.web")
bp = Blueprint("auth", __name__)
_hasher = PasswordHasher()
LOGIN_ATTEMPTS = 5
LOGIN_WINDOW = 60.0
_attempts: dict[tuple[str, str], deque[float]] = defaultdict(deque)
PUBLIC_ENDPOINTS = {"auth.login", "static", "browse.cid"}  # cid: a signed per-image token instead


def hash_password(password: str) -> str:
    """An argon2id hash for ``[[web.users]] password_hash``."""
    return _hasher.hash(password)


def _users() -> dict[str, WebUser]:
    from web import app_config

    return {u.name: u for u in app_config().web.users}


def load_user() -> Any:
    """Before every request: the session's user, or a redirect to the login page."""
    g.user = _users().get(session.get("user", ""))
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


def _rate_limited(key: tuple[str, str]) -> bool:
    now = time.monotonic()
    window = _attempts[key]
    while window and now - window[0] > LOGIN_WINDOW:
        window.popleft()
    return len(window) >= LOGIN_ATTEMPTS


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    status = 200
    if request.method == "POST":
        name = request.form.get("username", "")[:200]
        password = request.form.get("password", "")
        key = (request.remote_addr or "?", name)
        if _rate_limited(key):
            error, status = "Too many attempts. Wait a minute, then try again.", 429
        else:
            user = _users().get(name)
            ok = False
            if user is not None:
                try:
                    ok = _hasher.verify(user.password_hash, password)
                except (VerificationError, InvalidHashError):
                    ok = False
            if ok:
                _attempts.pop(key, None)
                session.clear()
                session["user"] = name
                session.permanent = True
                csrf_token()
                return redirect(safe_next(request.args.get("next", "")) or url_for("browse.accounts"))
            _attempts[key].append(time.monotonic())
            log.warning("failed web login for user %r from %s", name, request.remote_addr)
            error, status = "Wrong user name or password.", 401
    return render_template("login.html", error=error), status


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    session.clear()
    return redirect(url_for("auth.login"))
