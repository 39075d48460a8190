"""Restore from the web UI: a message, a selection, a folder, a folder as of a date, into an IMAP account.

``GET /restore`` turns what the user picked (``pid`` checkboxes, or ``account`` +
``folder`` + ``as_of``) into a :class:`archiver.restore.plan.RestorePlan` and shows it
with the target chooser; nothing changes on a GET.  ``POST /restore`` (CSRF
checked like every POST) re-resolves the same scope, checks the target and starts
:func:`archiver.restore.plan.execute_restore` as a background job (:mod:`web.jobs`);
the job page shows the result per folder.

Isolation: the source account and every selected message must belong to an
account the user may see, and so must the target (404 otherwise, as everywhere).
The engine resolves placement ids without an account check, so that check is
made here, before the scope is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, url_for

from archiver.archive import Archive
from archiver.errors import ArchiverError
from archiver.restore.execute import execute_restore
from archiver.restore.plan import RestorePlan, RestoreReport, default_prefix, plan_restore
from archiver.scope import Scope
from web.auth import login_required
from web.context import app_config, archive, visible_accounts
from web.ids import parse_id
from web.jobs import Job, new_job, registry
from web.prefs import end_of_day, parse_day

bp = Blueprint("restore", __name__)
MAX_SELECTED = 1000
MAX_RUNNING_PER_USER = 3
_BAD_PREFIX = re.compile(r"[\x00-\x1f\x7f*%\\]")


@dataclass(frozen=True)
class Choice:
    """What the form asked for, validated: the scope plus where it goes."""

    scope: Scope
    target: str
    prefix: str | None  # None: the default Restored/<date>
    in_place: bool
    dry_run: bool


def imap_targets() -> list[str]:
    """Accounts the user may see that a restore can write into (IMAP only)."""
    config = app_config()
    return [name for name in visible_accounts() if config.account(name).protocol == "imap"]


def as_of_day(text: str) -> str | None:
    """A picked day as the engine's ``as_of``: the end of that day in the reader's zone (None: today or later)."""
    if not text:
        return None
    moment = end_of_day(parse_day(text))
    return moment.isoformat() if moment < datetime.now(UTC) else None


def scope_from(args: Any) -> Scope:
    """The scope the form names, after the visibility checks (404 for anything the user may not see)."""
    catalog = archive().catalog
    visible = visible_accounts()
    pids = args.getlist("pid")
    if pids:
        if len(pids) > MAX_SELECTED:
            abort(400, f"select at most {MAX_SELECTED} messages at a time, or restore the whole folder")
        accounts = set()
        chosen: list[str] = []
        for pid in pids:
            placement_id = parse_id(pid)
            row = catalog.web_placement(placement_id) if placement_id is not None else None
            if row is None or row["account"] not in visible:
                abort(404)
            accounts.add(row["account"])
            chosen.append(str(placement_id))
        if len(accounts) != 1:
            abort(400, "the selected messages must come from one account")
        return Scope(account=accounts.pop(), messages=tuple(dict.fromkeys(chosen)))
    account = args.get("account", "")
    if account not in visible:
        abort(404)
    account_id = catalog.account_id(account)
    if account_id is None:
        abort(404)
    folders = tuple(dict.fromkeys(args.getlist("folder")))
    if not folders:
        abort(400, "choose a folder or some messages to restore")
    known = catalog.folders(account_id)
    if any(name not in known for name in folders):
        abort(404)
    return Scope(account=account, folders=folders, as_of=as_of_day(args.get("as_of", "")))


def choice_from(form: Any) -> Choice:
    scope = scope_from(form)
    target = form.get("target", "")
    if target not in imap_targets():
        abort(404)
    in_place = form.get("mode") == "in_place"
    prefix = None
    if not in_place:
        prefix = "/".join(p.strip() for p in form.get("prefix", "").split("/") if p.strip()) or None
        if prefix is not None and (
            len(prefix) > 200 or _BAD_PREFIX.search(prefix) or any(p in (".", "..") for p in prefix.split("/"))
        ):
            abort(400, "the folder prefix may not contain control characters, *, %, \\ or . / .. parts")
    return Choice(scope, target, prefix, in_place, form.get("dry_run") == "1")


def _plan(scope: Scope, prefix: str | None = None, in_place: bool = False) -> RestorePlan:
    try:
        return plan_restore(archive().catalog, scope, prefix=prefix, in_place=in_place)
    except ArchiverError as exc:
        abort(400, str(exc))


def _back_url(scope: Scope) -> str:
    if scope.messages:
        return url_for("browse.message", pid=int(scope.messages[0]))
    return url_for("browse.folders", account=scope.account)


@bp.route("/restore", methods=["GET"])
@login_required
def form() -> Any:
    """The plan of what was picked and the target chooser (reads only)."""
    scope = scope_from(request.args)
    plan = _plan(scope)
    targets = imap_targets()
    selected = scope.account if scope.account in targets else (targets[0] if targets else "")
    return render_template(
        "restore.html",
        scope=scope,
        plan=plan,
        targets=targets,
        selected=selected,
        prefix=default_prefix(archive().catalog, plan.run_id),
        back=_back_url(scope),
        day=request.args.get("as_of", "") if scope.as_of else "",
    )


@bp.route("/restore", methods=["POST"])
@login_required
def start() -> Any:
    """Start the restore as a background job and go to its page."""
    choice = choice_from(request.form)
    plan = _plan(choice.scope, choice.prefix, choice.in_place)
    config = app_config()
    target = config.account(choice.target)
    what = _describe(choice.scope)

    def work(job: Job) -> RestoreReport:
        with Archive(config.archive) as own:  # its own SQLite connection: the request threads share the app's
            return execute_restore(own, plan, target, dry_run=choice.dry_run, progress=job)

    job = new_job(
        "restore", choice.scope.account or "", f"Restore of {what} into {choice.target}", target=choice.target
    )
    job.total_messages, job.total_bytes = plan.messages, plan.bytes
    job.details.update(dry_run=choice.dry_run, source=what, back=_back_url(choice.scope))
    with current_app.extensions["archiver_lock"]:
        _refuse_if_busy(choice)
        registry().start(job, work)
    return redirect(url_for("jobs.job", job_id=job.id))


def _refuse_if_busy(choice: Choice) -> None:
    """One real restore per target account at a time (two could append the same message twice), a few per user."""
    active = registry().active()
    if not choice.dry_run and any(
        j.kind == "restore" and j.details.get("target") == choice.target and not j.details.get("dry_run")
        for j in active
    ):
        abort(409, f"a restore into {choice.target} is already running: start this one when it has finished")
    if sum(j.owner == g.user.name for j in active) >= MAX_RUNNING_PER_USER:
        abort(429, f"you have {MAX_RUNNING_PER_USER} jobs running: wait until one has finished")


def _describe(scope: Scope) -> str:
    if scope.messages:
        count = len(scope.messages)
        return f"{count} message{'s' if count != 1 else ''} of {scope.account}"
    folders = ", ".join(scope.folders)
    return f"{scope.account}: {folders}" + (f" as of {scope.as_of[:10]}" if scope.as_of else "")
