"""What every blueprint needs from the app it runs in: the archive, the config, who may see what, the filters.

Blueprints import this module, never the ``web`` package (whose ``__init__``
builds the app from the blueprints).
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g, make_response, render_template
from werkzeug.exceptions import HTTPException, InternalServerError

from archiver.archive import Archive
from archiver.config import Config


def archive() -> Archive:
    """The app's open archive (one per app, shared by its threads; see :class:`archiver.archive.Archive`)."""
    return current_app.extensions["archiver_archive"]


def app_config() -> Config:
    """The config the app was built with (a reload builds a new app)."""
    return current_app.extensions["archiver_config"]


def visible_accounts() -> list[str]:
    """Names of the configured accounts the logged-in user may see (admins: all)."""
    user = g.user
    names = [a.name for a in app_config().accounts]
    return names if user.admin else [n for n in names if n in user.accounts]


def human_size(value: int | None) -> str:
    """The ``size`` filter: bytes for people (binary units)."""
    size = float(value or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def duration(seconds: float) -> str:
    """The ``duration`` filter: ``42 s``, ``3 min 5 s``, ``2 h 10 min``."""
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
