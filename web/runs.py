"""Backup runs history with their errors, and the "back up now" button (a background job).

"Back up now" runs the backup exactly as the daemon's scheduler does: in a child
process (:class:`archiver.daemon.child.SubprocessRunner`) given the app's config
text, whose progress the job page shows and whose report is the job's result.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, url_for

from archiver.backup import RunReport
from archiver.daemon.child import SubprocessRunner
from archiver.errors import ConfigError
from archiver.index.lag import IndexLag, index_lag
from web.auth import login_required
from web.context import app_config, archive, visible_accounts
from web.jobs import Job, new_job, registry

bp = Blueprint("runs", __name__)
log = logging.getLogger("archiver.web")


@bp.route("/runs")
@login_required
def history() -> Any:
    catalog = archive().catalog
    ids = [i for name in visible_accounts() if (i := catalog.account_id(name)) is not None]
    runs = catalog.web_runs(ids, limit=100)
    errors = {run["id"]: catalog.run_errors(run["id"]) for run in runs if run["errors"]}
    visible = set(visible_accounts())
    jobs = [j for j in registry().of_user(g.user.name) if j.account in visible]
    running = sorted({j.account for j in jobs if j.running and j.kind == "backup"})
    lag = index_lag(archive().root, catalog)
    return render_template(
        "runs.html", runs=runs, errors=errors, running=running, jobs=jobs, index_line=_lag_line(lag), lag=lag
    )


def index_notice() -> str | None:
    """The search page's notice while the index lags (None when it is up to date): results may be incomplete."""
    lag = index_lag(archive().root, archive().catalog, quick=True)
    return _lag_line(lag) if lag.behind else None


def _lag_line(lag: IndexLag) -> str:
    """How far search lags, for this user: the figures are the whole archive's, so only an administrator
    (who sees every account) gets them; others learn only that recent mail may be missing."""
    if not lag.behind:
        return "Search index: up to date."
    if g.user.admin:
        return f"Search index: {lag.summary()}."
    return "Search index: catching up with the latest backup; the newest mail may be missing from results."


@bp.route("/backup/<account>", methods=["POST"])
@login_required
def backup_now(account: str) -> Any:
    """Start a background backup of the account and go to its job page (one web-started run per account).

    The account's run lock (:meth:`Archive.account_lock`), taken in the child, still guards
    against a scheduled or CLI run of the same account: the job then ends "skipped", saying why.
    """
    if account not in visible_accounts():
        abort(404)
    config = app_config()
    text: str | None = current_app.extensions["archiver_config_text"]
    runner: SubprocessRunner = current_app.extensions["archiver_backup_runner"]
    jobs = registry()
    with current_app.extensions["archiver_lock"]:
        current = jobs.running("backup", account)
        if current is not None:
            flash(f"A backup of {account} is already running.")
            return redirect(url_for("jobs.job", job_id=current.id))

        def work(job: Job) -> RunReport:
            if text is None:
                raise ConfigError(f"{config.source}: cannot read the config file the web UI was started with")
            report = runner.run(text, config, account, progress=job)
            log.info("web-started backup of %s finished: %s", account, report.status)
            return report

        job = jobs.start(new_job("backup", account, f"Backup of {account}"), work)
        current_app.extensions["archiver_backups"][account] = job.thread
    return redirect(url_for("jobs.job", job_id=job.id))
