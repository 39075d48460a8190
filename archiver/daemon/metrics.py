"""Prometheus metrics, computed from the catalog at scrape time.

Nothing is counted in memory: every figure is a query over ``runs``,
``placements`` and ``schedule_state``, so the numbers are the same whichever
process (daemon, ``archiver serve``, a CLI backup) did the work, and a restart
loses nothing.  A scrape costs a handful of aggregate queries; the heaviest is
the per-account count of present placements (one pass over the placements).

Metric names (all per ``account`` label unless noted):

=================================================  =========  ===================================================
name                                               type       meaning
=================================================  =========  ===================================================
archiver_account_last_success_timestamp_seconds    gauge      end of the latest run with status ok
archiver_account_last_run_timestamp_seconds        gauge      end (else start) of the latest run
archiver_account_last_run_duration_seconds         gauge      duration of the latest finished run
archiver_account_last_run_ok                       gauge      1 when the latest run's status is ok
archiver_account_last_run_errors                   gauge      errors recorded by the latest run
archiver_account_messages                          gauge      messages present in the archive (not gone)
archiver_account_bytes                             gauge      their raw size
archiver_account_stale                             gauge      1 when the last success is older than stale_after
archiver_account_failing                           gauge      1 while a failure alert is outstanding
archiver_account_next_run_timestamp_seconds        gauge      next scheduled run (daemon's persisted state)
archiver_runs_total                                counter    runs, by ``account`` and ``status``
archiver_messages_archived_total                   counter    new messages archived by all runs
archiver_bytes_fetched_total                       counter    bytes downloaded by all runs
archiver_bytes_stored_total                        counter    bytes written to the blob store by all runs
archiver_run_errors_total                          counter    errors recorded by all runs
archiver_archive_blobs                             gauge      unique messages in the store (no label)
archiver_archive_raw_bytes / _stored_bytes         gauge      their raw and compressed size (no label)
archiver_index_partly_indexed_messages             gauge      messages indexed only in part (index_problems)
=================================================  =========  ===================================================
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from archiver.catalog import Catalog
from archiver.config import Config
from archiver.daemon.schedule import parse_schedule, stale_after
from archiver.times import utc_now


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


class CatalogCollector:
    """A prometheus_client collector reading one catalog connection on each ``collect``."""

    def __init__(self, config: Config, catalog: Catalog) -> None:
        self.config = config
        self.db = catalog.db

    def collect(self) -> Iterator[Metric]:
        yield from self._last_runs()
        yield from self._totals()
        yield from self._present()
        yield from self._schedule()
        archive = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(stored_size), 0) FROM messages"
        ).fetchone()
        for name, value, text in zip(
            ("blobs", "raw_bytes", "stored_bytes"),
            archive,
            ("unique messages in the blob store", "their raw size", "their stored (compressed) size"),
            strict=True,
        ):
            yield GaugeMetricFamily(f"archiver_archive_{name}", text, value=value)
        partly = self.db.execute("SELECT COUNT(*) FROM index_problems").fetchone()[0]
        yield GaugeMetricFamily(
            "archiver_index_partly_indexed_messages", "Messages the search index holds only in part.", value=partly
        )

    def _gauge(self, name: str, text: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"archiver_account_{name}", text, labels=["account"])

    def _last_runs(self) -> Iterator[Metric]:
        success = self._gauge("last_success_timestamp_seconds", "End of the latest successful run (unix time).")
        last = self._gauge("last_run_timestamp_seconds", "End (else start) of the latest run (unix time).")
        duration = self._gauge("last_run_duration_seconds", "Duration of the latest finished run.")
        ok = self._gauge("last_run_ok", "1 when the latest run's status is ok.")
        errors = self._gauge("last_run_errors", "Errors recorded by the latest run.")
        stale = self._gauge("stale", "1 when the last success is older than the account's stale_after.")
        successes = dict(
            self.db.execute(
                "SELECT a.name, MAX(r.ended_at) FROM runs r JOIN accounts a ON a.id = r.account_id "
                "WHERE r.status = 'ok' GROUP BY a.name"
            ).fetchall()
        )
        for name, when in successes.items():
            success.add_metric([name], _ts(when) or 0)
        rows = self.db.execute(
            "SELECT a.name, r.started_at, r.ended_at, r.status, r.errors FROM runs r "
            "JOIN accounts a ON a.id = r.account_id "
            "WHERE r.id IN (SELECT MAX(id) FROM runs GROUP BY account_id)"
        ).fetchall()
        for name, started, ended, status, count in rows:
            last.add_metric([name], _ts(ended) or _ts(started) or 0)
            if ended:
                duration.add_metric([name], max(0.0, (_ts(ended) or 0) - (_ts(started) or 0)))
            ok.add_metric([name], 1.0 if status == "ok" else 0.0)
            errors.add_metric([name], count)
        now = utc_now().timestamp()
        for account in self.config.accounts:
            schedule = parse_schedule(account.schedule or self.config.scheduler.default_schedule)
            limit = stale_after(schedule if schedule.kind != "off" else None, self.config.scheduler.stale_after)
            when = _ts(successes.get(account.name))
            stale.add_metric([account.name], 1.0 if when is None or now - when > limit else 0.0)
        yield from (success, last, duration, ok, errors, stale)

    def _totals(self) -> Iterator[Metric]:
        runs = CounterMetricFamily("archiver_runs", "Backup runs by final status.", labels=["account", "status"])
        for name, status, count in self.db.execute(
            "SELECT a.name, r.status, COUNT(*) FROM runs r JOIN accounts a ON a.id = r.account_id GROUP BY 1, 2"
        ):
            runs.add_metric([name, status], count)
        yield runs
        families = [
            CounterMetricFamily("archiver_messages_archived", "New messages archived.", labels=["account"]),
            CounterMetricFamily("archiver_bytes_fetched", "Bytes downloaded from servers.", labels=["account"]),
            CounterMetricFamily("archiver_bytes_stored", "Bytes written to the blob store.", labels=["account"]),
            CounterMetricFamily("archiver_run_errors", "Errors recorded by runs.", labels=["account"]),
        ]
        for name, *values in self.db.execute(
            "SELECT a.name, SUM(r.messages_new), SUM(r.bytes_fetched), SUM(r.bytes_stored), SUM(r.errors) "
            "FROM runs r JOIN accounts a ON a.id = r.account_id GROUP BY a.name"
        ):
            for family, value in zip(families, values, strict=True):
                family.add_metric([name], value or 0)
        yield from families

    def _present(self) -> Iterator[Metric]:
        messages = self._gauge("messages", "Messages present in the archive (not gone from the server).")
        size = self._gauge("bytes", "Raw bytes of the messages present in the archive.")
        for name, count, total in self.db.execute(
            "SELECT a.name, COUNT(p.id), COALESCE(SUM(p.size), 0) FROM placements p "
            "JOIN folders f ON f.id = p.folder_id JOIN accounts a ON a.id = f.account_id "
            "WHERE p.gone_since_run IS NULL GROUP BY a.name"
        ):
            messages.add_metric([name], count)
            size.add_metric([name], total)
        yield from (messages, size)

    def _schedule(self) -> Iterator[Metric]:
        failing = self._gauge("failing", "1 while a failure alert is outstanding (no recovery yet).")
        next_run = self._gauge("next_run_timestamp_seconds", "Next scheduled run (unix time).")
        try:
            rows = self.db.execute("SELECT account, next_run_at, failing FROM schedule_state").fetchall()
        except Exception:  # a catalog not yet migrated to schema 4 (read-only open): no scheduler figures
            rows = []
        for name, when, flag in rows:
            failing.add_metric([name], float(flag))
            if when:
                next_run.add_metric([name], _ts(when) or 0)
        yield from (failing, next_run)


def render_metrics(config: Config, catalog: Catalog) -> bytes:
    """The Prometheus text exposition of the archive's figures."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CatalogCollector(config, catalog))  # type: ignore[arg-type]
    return generate_latest(registry)
