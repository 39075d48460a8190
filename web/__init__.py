"""Flask web UI for archiver: browse, search and read the archive; imports archiver, never the reverse.

:func:`create_app` is the only entry point (no module-level app).  The views
call archiver library functions (catalog reads, the blob store, the search
index, message parsing) and hold no business logic.  Security lives here, in
one place: login on every route (:func:`web.auth.login_required` on every
blueprint), a CSRF token on every POST, strict security headers on every
response, and per-user account visibility (:func:`web.context.visible_accounts`).  Blueprints,
one per page family, get what they share from :mod:`web.context`.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface

from archiver.archive import Archive
from archiver.config import Config
from archiver.daemon.child import SubprocessRunner
from archiver.secret_io import read_secret_file
from web import accounts_add, auth, browse, jobs, oauth_page, prefs, restore, runs, search, sessions_page
from web import metrics as metrics_web
from web.context import duration, error_page, human_size
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


def _config_text(config: Config) -> str | None:
    """The text of the config file, for the backup children "Back up now" starts; None when unreadable."""
    try:
        return config.source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def create_app(
    config: Config,
    *,
    testing: bool = False,
    listen: str | None = None,
    config_text: str | None = None,
    reload_config: Callable[[], None] | None = None,
) -> Flask:
    """Build the web app for ``config`` (the archive must exist: run a backup first).

    ``listen`` is the address the server really listens on (``--listen``), when not ``[web] listen``:
    ``/metrics`` opens without a token only on a loopback address.  ``config_text`` is the TOML
    ``config`` was read from (the daemon's last valid one); "Back up now" hands it to the backup
    child, as the scheduler does.  Default: the file ``config.source`` as it is now.  ``reload_config``
    asks the process serving the app to re-read its config (the daemon's SIGHUP path) after a page
    wrote to it, so an account added here is scheduled and shown at once; ``archiver serve`` has none.
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
    app.extensions["archiver_reload_config"] = reload_config
    app.extensions["archiver_config_text"] = config_text if config_text is not None else _config_text(config)
    app.extensions["archiver_backup_runner"] = SubprocessRunner()  # the scheduler's way: one child per backup
    app.extensions["archiver_jobs"] = jobs.JobRegistry()
    oauth_page.init_app(app)
    pages = (auth, browse, search, runs, restore, jobs, prefs, sessions_page, accounts_add, oauth_page)
    for blueprint in (page.bp for page in pages):
        app.register_blueprint(blueprint)
    app.register_blueprint(metrics_web.bp)  # GET /metrics: own auth (token or loopback only), see web/metrics.py
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


def close_app(app: Flask) -> None:
    """Stop the app's web-started backups (committed work is kept) and close its archive and session store."""
    for resource in ("archiver_backup_runner", "archiver_archive", "archiver_sessions"):
        app.extensions[resource].close()
