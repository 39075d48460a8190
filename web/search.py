"""The search page: the index's query syntax plus filters, highlighted snippets, pages."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for

from archiver import index
from archiver.errors import ArchiverError
from archiver.store import is_blob_id
from web.auth import login_required
from web.context import archive, visible_accounts
from web.ids import parse_id
from web.runs import index_notice

bp = Blueprint("search", __name__)
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _quoted(value: str) -> str:
    return '"' + value.replace('"', " ") + '"'


def build_query(args: Any) -> str:
    """The free-text query plus the form's filters, in the index's own syntax."""
    parts = [args.get("q", "").strip()]
    if args.get("folder", "").strip():
        parts.append(f"folder:{_quoted(args['folder'].strip())}")
    for key in ("after", "before"):
        value = args.get(key, "")
        if value:
            if not _DAY.fullmatch(value):
                abort(400, "dates must look like 2024-05-31")
            parts.append(f"{key}:{value}")
    if args.get("attachment") == "1":
        parts.append("has:attachment")
    return " ".join(p for p in parts if p)


@bp.route("/search")
@login_required
def search() -> Any:
    visible = visible_accounts()
    account = request.args.get("account", "")
    if account and account not in visible:
        abort(404)
    query = build_query(request.args)
    page_no = parse_id(request.args.get("page", "1")) or 1
    page_no = page_no if page_no < 10_000 else 1
    result, error = None, None
    if query:
        try:
            result = index.search(archive(), query, accounts=[account] if account else visible, page=page_no)
        except ArchiverError as exc:
            error = str(exc)
    notice = index_notice() if query else None
    return render_template(
        "search.html", result=result, error=error, args=request.args, accounts=visible, query=query, notice=notice
    )


@bp.route("/b/<blob_id>")
@login_required
def blob(blob_id: str) -> Any:
    """From a search hit (a blob) to a message page (a placement the user may see)."""
    if not is_blob_id(blob_id):
        abort(404)
    pid = archive().catalog.web_placement_of_blob(blob_id, visible_accounts())
    if pid is None:
        abort(404)
    return redirect(url_for("browse.message", pid=pid))
