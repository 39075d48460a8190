"""Accounts, folder tree, message list (keyset pages), message view and downloads.

Every view resolves what it shows to an account and checks it against
:func:`web.visible_accounts` (404 rather than 403, so ids of other users'
mail are not even confirmed to exist).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, render_template, request, url_for

from archiver.mail.message_view import parse_message, part_bytes, safe_content_type, safe_html
from archiver.times import utc_iso
from web.auth import login_required
from web.context import app_config, archive, visible_accounts
from web.filenames import content_disposition
from web.ids import parse_id
from web.prefs import end_of_day, parse_day

bp = Blueprint("browse", __name__)
PAGE_SIZE = 50


def _account_id(name: str) -> int:
    if name not in visible_accounts():
        abort(404)
    account_id = archive().catalog.account_id(name)
    if account_id is None:
        abort(404)
    return account_id


def _placement(pid: int) -> Any:
    row = archive().catalog.web_placement(pid)
    if row is None or row["account"] not in visible_accounts():
        abort(404)
    return row


def _raw(row: Any) -> bytes:
    return archive().store.get(row["blob_id"])


def attachment_response(data: bytes, filename: str, content_type: str) -> Response:
    """A download that never renders in the page: attachment, RFC 6266 filename*, nosniff."""
    response = Response(data, content_type=safe_content_type(content_type))
    response.headers["Content-Disposition"] = content_disposition(filename)
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@bp.route("/")
@login_required
def accounts() -> Any:
    catalog = archive().catalog
    rows = []
    for name in visible_accounts():
        account_id = catalog.account_id(name)
        totals = catalog.account_totals(account_id) if account_id else None
        last = catalog.last_runs(account_id, 1) if account_id else []
        error = catalog.last_error(account_id) if account_id else None
        row = {"name": name, "totals": totals, "last": last[0] if last else None, "error": error}
        row["oauth2"] = app_config().account(name).oauth2 is not None  # admins get a link to connect it
        rows.append(row)
    return render_template("accounts.html", accounts=rows)


@bp.route("/a/<account>")
@login_required
def folders(account: str) -> Any:
    account_id = _account_id(account)
    return render_template("folders.html", account=account, folders=archive().catalog.web_folders(account_id))


def _as_of_run(account_id: int, text: str) -> tuple[int | None, str]:
    """The run that gives the folder's state at the end of the given day (in the reader's time zone).

    0 (no run: an empty page) when the account had no run by then; the same
    rule as a restore "as of" that day, so the page shows what a restore brings back.
    """
    day = parse_day(text)
    return archive().catalog.run_at(account_id, utc_iso(end_of_day(day))) or 0, day.isoformat()


@bp.route("/f/<id:folder_id>")
@login_required
def folder(folder_id: int) -> Any:
    catalog = archive().catalog
    info = catalog.web_folder(folder_id)
    if info is None or info["account"] not in visible_accounts():
        abort(404)
    before = None
    cursor = request.args.get("before", "")
    if cursor:
        stamp, _, pid = cursor.rpartition("|")
        cursor_pid = parse_id(pid)
        if cursor_pid is None or len(stamp) > 40:
            abort(400, "bad page cursor: go back to the first page")
        before = (stamp, cursor_pid)
    run_id, as_of = (None, "")
    if request.args.get("as_of"):
        run_id, as_of = _as_of_run(info["account_id"], request.args["as_of"])
    rows = catalog.web_folder_page(folder_id, before=before, limit=PAGE_SIZE + 1, run_id=run_id)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    next_url = None
    if more:
        last = rows[-1]
        args = {"before": f"{last['internaldate']}|{last['id']}"}
        if as_of:
            args["as_of"] = as_of
        next_url = url_for("browse.folder", folder_id=folder_id, **args)
    return render_template("folder.html", folder=info, rows=rows, next_url=next_url, as_of=as_of, first=not before)


@bp.route("/m/<id:pid>")
@login_required
def message(pid: int) -> Any:
    row = _placement(pid)
    view = parse_message(_raw(row))
    remote = request.args.get("remote") == "1"
    return render_template("message.html", row=row, view=view, remote=remote)


@bp.route("/m/<id:pid>/raw")
@login_required
def raw(pid: int) -> Any:
    row = _placement(pid)
    return attachment_response(_raw(row), f"message-{pid}.eml", "application/octet-stream")


@bp.route("/m/<id:pid>/part/<id:index>")
@login_required
def part(pid: int, index: int) -> Any:
    found = part_bytes(_raw(_placement(pid)), index)
    if found is None:
        abort(404)
    info, data = found
    return attachment_response(data, info.filename or f"part-{index}", info.content_type)


CID_TOKEN_SECONDS = 3600


def cid_token(pid: int, index: int, expires: int | None = None) -> str:
    """A short-lived capability for one inline image of one message.

    The sandboxed iframe has an opaque origin, so the browser treats its image
    requests as cross-site and does not send the SameSite=Lax session cookie;
    the HTML view (which did check login and visibility) hands out these
    signed URLs instead.  A token opens that one part and nothing else.
    """
    expires = expires or int(time.time()) + CID_TOKEN_SECONDS
    key = current_app.config["SECRET_KEY"]
    mac = hmac.new(key, f"cid:{pid}:{index}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{expires}.{mac}"


def _cid_token_ok(pid: int, index: int, token: str) -> bool:
    expires = parse_id(token.partition(".")[0])
    if expires is None or expires < time.time():
        return False
    return hmac.compare_digest(cid_token(pid, index, expires), token)


@bp.route("/m/<id:pid>/cid/<id:index>")
def cid(pid: int, index: int) -> Any:
    """An inline image for the HTML view; only image types, never rendered as a document."""
    if not _cid_token_ok(pid, index, request.args.get("t", "")):
        abort(404)
    row = archive().catalog.web_placement(pid)
    if row is None:
        abort(404)
    found = part_bytes(_raw(row), index)
    if found is None or found[0].content_type not in ("image/png", "image/jpeg", "image/gif", "image/webp"):
        abort(404)
    response = Response(found[1], content_type=found[0].content_type)
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@bp.route("/m/<id:pid>/html")
@login_required
def html(pid: int) -> Any:
    """The sanitised HTML body, for a sandboxed iframe, under a CSP that forbids scripts and remote loads."""
    row = _placement(pid)
    view = parse_message(_raw(row))
    if view.html is None:
        abort(404)
    remote = request.args.get("remote") == "1"
    cid_urls = {cid: url_for("browse.cid", pid=pid, index=i, t=cid_token(pid, i)) for cid, i in view.cid_map().items()}
    body = safe_html(view.html, cid_urls, allow_remote_images=remote)
    base = request.host_url.rstrip("/") + url_for("browse.cid", pid=pid, index=0).rsplit("/", 1)[0] + "/"
    img_src = f"{base} data:" + (" https: http:" if remote else "")
    response = Response(
        '<!doctype html><meta charset="utf-8"><meta name="referrer" content="no-referrer">' + body,
        content_type="text/html; charset=utf-8",
    )
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; img-src {img_src}; style-src 'unsafe-inline'; font-src 'none'; "
        "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox allow-popups "
        "allow-popups-to-escape-sandbox"
    )
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    g.html_body = True
    return response
