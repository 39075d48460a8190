"""Flask web UI for archiver: browse, search and read the archive; imports archiver, never the reverse.

:func:`create_app` is the only entry point (no module-level app).  The views
call archiver library functions (catalog reads, the blob store, the search
index, message parsing) and hold no business logic.  Security lives here, in
one place: login on every route (:func:`web.auth.login_required` on every
blueprint), a CSRF token on every POST, strict security headers on every
response, and per-user account visibility (:func:`visible_accounts`).
"""

from __future__ import annotations

import os
import secrets
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, g, request
from flask.sessions import SecureCookieSessionInterface

from archiver.archive import Archive
from archiver.config import Config
from archiver.config.secrets import read_secret_file
from web.filenames import shown_name
from web.ids import IdConverter
from web.sessions import SessionStore

APP_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; frame-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def _secret_key(config: Config) -> bytes:
    """The session-signing key: read from a file, created with mode 0600 at first start."""
    path = config.web.secret_key_file or Path(config.archive.path) / "web-secret.key"
    if path.exists() or path.is_symlink():  # bounded, never blocking: a FIFO or /dev/zero is one clear error
        return read_secret_file(path, "[web] secret_key_file")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


class _SessionInterface(SecureCookieSessionInterface):
    """Signed-cookie sessions whose cookie is ``Secure`` when the request came over TLS (or when configured)."""

    def __init__(self, secure: bool | None) -> None:
        self.secure = secure

    def get_cookie_secure(self, app: Flask) -> bool:
        return self.secure if self.secure is not None else request.is_secure


def create_app(config: Config, *, testing: bool = False, listen: str | None = None) -> Flask:
    """Build the web app for ``config`` (the archive must exist: run a backup first).

    ``listen`` is the address the server really listens on (``--listen``), when not ``[web] listen``:
    ``/metrics`` opens without a token only on a loopback address.
    """
    app = Flask(__name__)
    app.config.update(
        TESTING=testing,
        SECRET_KEY=_secret_key(config),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(config.web.secure_cookies),
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=config.web.session_lifetime),
        SESSION_REFRESH_EACH_REQUEST=False,  # the server decides when a session ends (web/sessions.py)
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.session_interface = _SessionInterface(config.web.secure_cookies)
    app.url_map.converters["id"] = IdConverter
    app.extensions["archiver_config"] = config
    app.extensions["archiver_listen"] = listen or config.web.listen
    app.extensions["archiver_archive"] = Archive(config.archive)
    app.extensions["archiver_lock"] = threading.Lock()
    app.extensions["archiver_backups"] = {}  # account -> thread of its latest web-started backup
    from web import auth, browse, jobs, oauth_page, prefs, restore, runs, search, sessions_page

    app.extensions["archiver_jobs"] = jobs.JobRegistry()
    oauth_page.init_app(app)
    for blueprint in (auth.bp, browse.bp, search.bp, runs.bp, restore.bp, jobs.bp, prefs.bp, sessions_page.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(oauth_page.bp)  # /oauth/<account>: admins connect an account's OAuth2 grant
    from web import metrics as metrics_web  # GET /metrics: own auth (token or loopback only), see web/metrics.py

    app.register_blueprint(metrics_web.bp)
    auth.init_app(app, SessionStore(Path(config.archive.path), config.web.session_idle_timeout,
                                     config.web.session_lifetime))  # fmt: skip
    app.before_request(auth.load_user)
    app.before_request(auth.check_csrf)
    app.jinja_env.globals.update(csrf_token=auth.csrf_token, time_zone=prefs.zone_name)
    app.jinja_env.filters.update(size=human_size, when=prefs.local_time, duration=duration, shown_name=shown_name)
    for status in (400, 401, 403, 404, 405, 409, 413, 429, 500):
        app.register_error_handler(status, error_page)

    @app.after_request
    def security_headers(response):  # type: ignore[no-untyped-def]
        response.headers.setdefault("Content-Security-Policy", APP_CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    return app


def archive() -> Archive:
    from flask import current_app

    return current_app.extensions["archiver_archive"]


def app_config() -> Config:
    from flask import current_app

    return current_app.extensions["archiver_config"]


def visible_accounts() -> list[str]:
    """Names of the configured accounts the logged-in user may see (admins: all)."""
    user = g.user
    names = [a.name for a in app_config().accounts]
    return names if user.admin else [n for n in names if n in user.accounts]


def human_size(value: int | None) -> str:
    size = float(value or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


ERROR_HINTS = {
    400: "The request did not make sense. Go back, reload the page and try again.",
    401: "Log in first.",
    403: "You may not do this.",
    404: "There is nothing here, or nothing you may see. Check the address, or start again from Accounts.",
    405: "This page does not take that kind of request.",
    409: "Something else is under way that this would clash with. Wait for it to finish, then try again.",
    413: "That request is too large.",
    429: "Too many attempts. Wait a minute, then try again.",
    500: "Something broke on the server; the log has the details. Try again, or tell the administrator.",
}


def error_page(error: Exception) -> Any:
    """Errors as a page of the app (with the way out), never a stack trace; the error's own headers kept (Allow)."""
    from flask import make_response, render_template
    from werkzeug.exceptions import HTTPException, InternalServerError

    if not isinstance(error, HTTPException):
        error = InternalServerError()
    code = error.code or 500
    detail = error.description if code in (400, 409, 413, 429) else None
    page = render_template("error.html", code=code, name=error.name, detail=detail, hint=ERROR_HINTS.get(code, ""))
    response = make_response(page, code)
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response
