"""Prometheus metrics, computed from the catalog at scrape time.

Nothing is counted in memory: every figure is a query over ``runs``,
``placements`` and ``schedule_state``, so the numbers are the same whichever
process (daemon, ``archiver serve``, a CLI backup) did the work, and a restart
loses nothing.  A scrape costs a handful of aggregate queries; the heaviest is
the per-account count of present placements (one pass over the placements).
The index lag is read as ``status`` reads it (:mod:`archiver.index.lag`): the
index's hint file and the catalog, never the index itself.

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
archiver_index_lag_messages                        gauge      archived messages not searchable yet (no label)
archiver_index_lag_changes                         gauge      indexed messages whose folder/flag changes wait
archiver_index_lag_seconds                         gauge      how long the oldest unsearchable message has waited
archiver_index_worker_running                      gauge      1 while a process is indexing (worker or backup)
archiver_index_update_failed                       gauge      1 when the last index update failed and lags
=================================================  =========  ===================================================
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from archiver.catalog import Catalog
from archiver.catalog.schedule_state import load_states
from archiver.config import Config
from archiver.daemon.status import stale_limit
from archiver.index.lag import index_lag
from archiver.times import utc_now


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


class CatalogCollector:
    """A prometheus_client collector reading one catalog connection on each ``collect``."""

    def __init__(self, config: Config, catalog: Catalog) -> None:
        self.config = config
        self.catalog = catalog

    def collect(self) -> Iterator[Metric]:
        yield from self._last_runs()
        yield from self._totals()
        yield from self._present()
        yield from self._schedule()
        archive = self.catalog.archive_totals()
        for name, text in (
            ("blobs", "unique messages in the blob store"),
            ("raw_bytes", "their raw size"),
            ("stored_bytes", "their stored (compressed) size"),
        ):
            yield GaugeMetricFamily(f"archiver_archive_{name}", text, value=archive[name])
        partly = self.catalog.index_problem_count()
        yield GaugeMetricFamily(
            "archiver_index_partly_indexed_messages", "Messages the search index holds only in part.", value=partly
        )
        yield from self._index_lag()

    def _index_lag(self) -> Iterator[Metric]:
        lag = index_lag(self.config.archive.path, self.catalog)
        for name, text, value in (
            ("lag_messages", "Archived messages not searchable yet.", lag.messages),
            ("lag_changes", "Indexed messages whose folder or flag changes are not searchable yet.", lag.changes),
            ("lag_seconds", "How long the oldest message not searchable yet has waited.", lag.oldest_seconds or 0.0),
            ("worker_running", "1 while a process is indexing (the background worker or a backup).", lag.updating),
            ("update_failed", "1 when the last index update failed and the index lags.", lag.failed is not None),
        ):
            yield GaugeMetricFamily(f"archiver_index_{name}", text, value=float(value))

    def _gauge(self, name: str, text: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"archiver_account_{name}", text, labels=["account"])

    def _last_runs(self) -> Iterator[Metric]:
        success = self._gauge("last_success_timestamp_seconds", "End of the latest successful run (unix time).")
        last = self._gauge("last_run_timestamp_seconds", "End (else start) of the latest run (unix time).")
        duration = self._gauge("last_run_duration_seconds", "Duration of the latest finished run.")
        ok = self._gauge("last_run_ok", "1 when the latest run's status is ok.")
        errors = self._gauge("last_run_errors", "Errors recorded by the latest run.")
        stale = self._gauge("stale", "1 when the last success is older than the account's stale_after.")
        successes = self.catalog.last_success_by_account()
        for name, when in successes.items():
            success.add_metric([name], _ts(when) or 0)
        for run in self.catalog.latest_runs():
            last.add_metric([run.account], _ts(run.ended_at) or _ts(run.started_at) or 0)
            if run.ended_at:
                duration.add_metric([run.account], max(0.0, (_ts(run.ended_at) or 0) - (_ts(run.started_at) or 0)))
            ok.add_metric([run.account], 1.0 if run.status == "ok" else 0.0)
            errors.add_metric([run.account], run.errors)
        now = utc_now().timestamp()
        for account in self.config.accounts:
            limit = stale_limit(self.config, account.name)
            when = _ts(successes.get(account.name))
            stale.add_metric([account.name], 1.0 if when is None or now - when > limit else 0.0)
        yield from (success, last, duration, ok, errors, stale)

    def _totals(self) -> Iterator[Metric]:
        runs = CounterMetricFamily("archiver_runs", "Backup runs by final status.", labels=["account", "status"])
        for name, status, count in self.catalog.run_counts():
            runs.add_metric([name, status], count)
        yield runs
        families = [
            CounterMetricFamily("archiver_messages_archived", "New messages archived.", labels=["account"]),
            CounterMetricFamily("archiver_bytes_fetched", "Bytes downloaded from servers.", labels=["account"]),
            CounterMetricFamily("archiver_bytes_stored", "Bytes written to the blob store.", labels=["account"]),
            CounterMetricFamily("archiver_run_errors", "Errors recorded by runs.", labels=["account"]),
        ]
        for sums in self.catalog.run_sums():
            values = (sums.messages_new, sums.bytes_fetched, sums.bytes_stored, sums.errors)
            for family, value in zip(families, values, strict=True):
                family.add_metric([sums.account], value)
        yield from families

    def _present(self) -> Iterator[Metric]:
        messages = self._gauge("messages", "Messages present in the archive (not gone from the server).")
        size = self._gauge("bytes", "Raw bytes of the messages present in the archive.")
        for present in self.catalog.present_totals():
            messages.add_metric([present.account], present.messages)
            size.add_metric([present.account], present.bytes)
        yield from (messages, size)

    def _schedule(self) -> Iterator[Metric]:
        failing = self._gauge("failing", "1 while a failure alert is outstanding (no recovery yet).")
        next_run = self._gauge("next_run_timestamp_seconds", "Next scheduled run (unix time).")
        for name, state in load_states(self.catalog).items():  # empty for a catalog older than schema 4
            failing.add_metric([name], float(state.failing))
            if state.next_run_at:
                next_run.add_metric([name], state.next_run_at.timestamp())
        yield from (failing, next_run)


def render_metrics(config: Config, catalog: Catalog) -> bytes:
    """The Prometheus text exposition of the archive's figures."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CatalogCollector(config, catalog))  # type: ignore[arg-type]
    return generate_latest(registry)
