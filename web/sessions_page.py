"""``/sessions``: where you are logged in, and ending sessions (yours; an admin's: anyone's).

The web twin of ``archiver sessions list`` / ``revoke``: a lost laptop's
session can be ended from another browser without shell access.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for

from web.auth import login_required, sessions
from web.context import app_config

bp = Blueprint("sessions", __name__)


def _manageable() -> set[str]:
    """Whose sessions the user may see and end: their own; an admin: every configured user's."""
    if g.user.admin:
        return {u.name for u in app_config().web.users}
    return {g.user.name}


@bp.route("/sessions")
@login_required
def sessions_page() -> Any:
    live = sessions().live(_manageable(), session.get("sid", ""))
    return render_template("sessions.html", sessions=live)


@bp.route("/sessions/end", methods=["POST"])
@login_required
def end() -> Any:
    name = request.form.get("user", "")
    if name not in _manageable():
        abort(404)
    count = sessions().end_user(name)
    flash(f"Ended {count} session(s) of {name}.")
    return redirect(url_for("sessions.sessions_page"))  # ending your own: the next page is the login
