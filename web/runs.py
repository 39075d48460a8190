"""Backup runs history with their errors, and the "back up now" button."""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for

from archiver.backup import run_backup
from web import app_config, archive, visible_accounts
from web.auth import login_required

bp = Blueprint("runs", __name__)
log = logging.getLogger("archiver.web")


@bp.route("/runs")
@login_required
def history() -> Any:
    catalog = archive().catalog
    ids = [i for name in visible_accounts() if (i := catalog.account_id(name)) is not None]
    runs = catalog.web_runs(ids, limit=100)
    errors = {run["id"]: catalog.run_errors(run["id"]) for run in runs if run["errors"]}
    running = sorted(n for n, t in current_app.extensions["archiver_backups"].items() if t.is_alive())
    return render_template("runs.html", runs=runs, errors=errors, running=running)


@bp.route("/backup/<account>", methods=["POST"])
@login_required
def backup_now(account: str) -> Any:
    """Start one background backup of the account (one at a time; the account lock guards other processes)."""
    if account not in visible_accounts():
        abort(404)
    config = app_config()
    threads: dict[str, threading.Thread] = current_app.extensions["archiver_backups"]
    with current_app.extensions["archiver_lock"]:
        current = threads.get(account)
        if current is not None and current.is_alive():
            flash(f"A backup of {account} is already running.")
        else:

            def work() -> None:
                try:
                    report = run_backup(config, config.account(account))
                    log.info("web-started backup of %s finished: %s", account, getattr(report, "status", "done"))
                except Exception:  # a thread has nobody to raise to: log it, the run row holds the details
                    log.exception("web-started backup of %s failed", account)

            thread = threading.Thread(target=work, name=f"web-backup-{account}", daemon=True)
            threads[account] = thread
            thread.start()
            flash(f"Backup of {account} started. Reload this page to follow it.")
    return redirect(url_for("runs.history"))
