"""The loop's state as Prometheus metrics: a collector read at every scrape of ``evergreen
observe``'s ``/metrics``.

It reads what the loop already writes: the landing zone (newest day per feed, and when this
collector first saw it: the one thing it keeps, in ``observe/landing_seen.json``), the Dagster
instance (the newest loaded labels day; whether the newest retrain and deploy runs failed), the
ledger (the champion and its cut-off, the retrain triggers by outcome, the newest rollout's
end), the monitors' kept findings (the newest judged drift and performance decay) and the
supervisor's state (whether something should serve, and which replicas answer ``/readyz``).

The names the Grafana dashboard charts are ``evergreen.dashboards.metric_names``'s (one
owner). Data days are exported as the Unix time of their midnight (UTC), so a dashboard shows
them as dates and a rule subtracts them; the champion's age is in data days (as the retrain
floor counts it). A source that fails to read is left out of that scrape and flagged in
``evergreen_loop_metrics_error{source}``: one broken reader never hides the others.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from evergreen.dashboards import metric_names as names
from evergreen.settings import EvergreenSettings

READY_PROBE_TIMEOUT_S = 0.5
JOBS = ("retrain", "deploy")
ROLLOUT_FAILURES = ("failed", "rolled_back")


def day_seconds(day: dt.date) -> float:
    """A data day as a Prometheus value: the Unix time of its midnight (UTC)."""
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()


def _gauge(name: str, doc: str, value: float | None = None, labels=None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    if value is not None:
        family.add_metric(list((labels or {}).values()), value)
    return family


class LoopCollector:
    """A prometheus_client collector of one Evergreen home's loop state."""

    def __init__(self, settings: EvergreenSettings) -> None:
        self.settings = settings
        self._instance = None
        self._lock = threading.Lock()
        self._newest_label_day: dt.date | None = None
        self.errors: dict[str, str] = {}  # source -> the last scrape's error

    def describe(self) -> list:
        return []  # an unchecked collector: its series depend on what exists

    def collect(self) -> Iterator[Metric]:
        # One collection at a time (the warm-up and scrapes share the Dagster instance).
        with self._lock:
            yield from list(self._collect())

    def _collect(self) -> Iterator[Metric]:
        sources: dict[str, Callable[[], list[Metric]]] = {
            "landing": self._landing,
            "dagster": self._dagster,
            "ledger": self._ledger,
            "findings": self._findings,
            "serving": self._serving,
        }
        failed = _gauge(
            "evergreen_loop_metrics_error",
            "1 when a source of the loop's metrics failed to read in this scrape.",
            labels={"source": ""},
        )
        self.errors = {}
        self._newest_label_day = None  # read by the dagster source, used by the ledger's
        for source, read in sources.items():
            try:
                metrics = read()
            except Exception as error:  # one broken source must not hide the others
                self.errors[source] = f"{type(error).__name__}: {error}"
                metrics = []
            failed.add_metric([source], 1.0 if source in self.errors else 0.0)
            yield from metrics
        yield failed

    # Sources.

    def _landing(self) -> list[Metric]:
        from evergreen.ingest.contracts import FEEDS
        from evergreen.ingest.landing import landed_dates, list_files

        newest = _gauge(
            names.NEWEST_LANDED_DAY_TIMESTAMP,
            "The newest data day with files in the landing zone, per feed (its midnight UTC).",
            labels={"feed": ""},
        )
        landed = _gauge(
            "evergreen_last_landing_timestamp_seconds",
            "When the newest landed day of a feed (or a change of its files) was first seen "
            "(wall clock).",
            labels={"feed": ""},
        )
        root = self.settings.landing_dir
        seen = self._landing_seen()
        for feed in FEEDS:
            days = landed_dates(root, feed)
            files = list_files(root, feed, days[-1]) if days else []
            if not files:
                continue
            newest.add_metric([feed], day_seconds(days[-1]))
            stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
            signature = json.dumps([days[-1].isoformat(), stats])
            if seen.get(feed, {}).get("signature") != signature:
                seen[feed] = {"signature": signature, "seen_at": time.time()}
            landed.add_metric([feed], seen[feed]["seen_at"])
        self._keep_landing_seen(seen)
        return [newest, landed]

    # When each feed's newest day was first seen. Not the files' times: the simulator stamps
    # them with the simulated world's clock (2018), a copy or a backfill with any other. Kept
    # in the observe folder, so a restart does not reset how late a feed is.

    def _seen_path(self):
        return self.settings.observe_dir / "landing_seen.json"

    def _landing_seen(self) -> dict:
        path = self._seen_path()
        try:
            return json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError):  # a torn or foreign file: start seeing afresh
            return {}

    def _keep_landing_seen(self, seen: dict) -> None:
        path = self._seen_path()
        text = json.dumps(seen, sort_keys=True)
        if path.exists() and path.read_text() == text:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.tmp")
        partial.write_text(text)
        partial.replace(path)

    def _dagster_instance(self):
        if self._instance is None:
            from dagster import DagsterInstance

            from evergreen.instance import ensure_instance

            self._instance = DagsterInstance.from_config(str(ensure_instance(self.settings)))
        return self._instance

    def _dagster(self) -> list[Metric]:
        from dagster import AssetKey, DagsterRunStatus, RunsFilter

        instance = self._dagster_instance()
        metrics: list[Metric] = []
        labels = instance.get_materialized_partitions(AssetKey("raw_labels"))
        if labels:
            newest = max(dt.date.fromisoformat(p) for p in labels)
            metrics.append(
                _gauge(
                    names.NEWEST_MATURED_LABEL_DAY_TIMESTAMP,
                    "The newest loaded labels day (matured labels; a retrain's cut-off).",
                    day_seconds(newest),
                )
            )
            self._newest_label_day = newest
        failed = _gauge(
            "evergreen_job_last_run_failed",
            "1 when the newest finished run of a Dagster job failed (0: it succeeded).",
            labels={"dagster_job": ""},  # not "job": Prometheus's own label
        )
        finished = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
        for job in JOBS:
            runs = instance.get_runs(RunsFilter(job_name=job, statuses=finished), limit=1)
            if runs:
                failed.add_metric([job], float(runs[0].status != DagsterRunStatus.SUCCESS))
        return [*metrics, failed]

    def _ledger(self) -> list[Metric]:
        from evergreen.loop.retrain_policy import RetrainGovernor
        from evergreen.models.registry import ModelRegistry
        from evergreen.rollout.records import list_rollouts, rollout_ledger

        metrics: list[Metric] = []
        champion = ModelRegistry(self.settings).champion()
        if champion is not None and champion.cutoff:
            cutoff = dt.date.fromisoformat(champion.cutoff)
            metrics.append(
                _gauge(
                    "evergreen_champion_cutoff_timestamp_seconds",
                    "The champion's cut-off day (the newest labels it trained on).",
                    day_seconds(cutoff),
                    {"model_version": champion.tag},
                )
            )
            newest = self._newest_label_day
            if newest is not None:
                metrics.append(
                    _gauge(
                        names.CHAMPION_AGE_DATA_DAYS,
                        "Data days from the champion's cut-off to the newest loaded labels.",
                        float((newest - cutoff).days),
                        {"model_version": champion.tag},
                    )
                )
        triggers = CounterMetricFamily(
            names.RETRAINS_TOTAL.removesuffix("_total"),
            "Retrain triggers the policy recorded, by kind and outcome (accepted, "
            "suppressed, ...).",
            labels=["kind", "outcome"],
        )
        counts: dict[tuple[str, str], int] = {}
        for row in RetrainGovernor(self.settings).history():
            key = (row["kind"], row["outcome"])
            counts[key] = counts.get(key, 0) + 1
        for (kind, outcome), count in sorted(counts.items()):
            triggers.add_metric([kind, outcome], count)
        metrics.append(triggers)
        with rollout_ledger(self.settings) as conn:
            newest = list_rollouts(conn, limit=1)
        if newest and newest[0].status != "in_progress":
            metrics.append(
                _gauge(
                    "evergreen_rollout_last_failed",
                    "1 when the newest rollout ended failed or rolled back.",
                    float(newest[0].status in ROLLOUT_FAILURES),
                    {"revision": newest[0].revision},
                )
            )
        return metrics

    def _findings(self) -> list[Metric]:
        from evergreen.loop.monitors import finding_path

        metrics: list[Metric] = []
        named = {
            "drift": ("evergreen_drift_severity", "Share of features drifted"),
            "performance": ("evergreen_performance_decay", "Relative drop of the champion's AP"),
        }
        for kind, (name, what) in named.items():
            folder = finding_path(self.settings, kind, dt.date(2000, 1, 1)).parent
            newest = _newest_judged(folder)
            if newest is None:
                continue
            day, severity = newest
            metrics.append(_gauge(name, f"{what} on the newest judged day.", severity))
            metrics.append(
                _gauge(
                    f"{name}_day_timestamp_seconds",
                    f"The day {name} was judged on (its midnight UTC).",
                    day_seconds(day),
                )
            )
        return metrics

    def _serving(self) -> list[Metric]:
        from evergreen.rollout.state import read_state
        from evergreen.rollout.targets import is_ready

        state = read_state(self.settings)
        expected = _gauge(
            "evergreen_serving_expected",
            "1 while the router runs (started by `evergreen serve`, not stopped).",
            float(state.edge is not None),
        )
        ready = _gauge(
            "evergreen_ready_replicas",
            "Replicas of a live revision answering /readyz now.",
            labels={"revision": "", "model_version": ""},
        )
        revisions = state.live()
        replicas = [(v, r) for v in revisions for r in v.replicas]
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(replicas)))) as pool:
            answers = list(pool.map(lambda vr: is_ready(vr[1], READY_PROBE_TIMEOUT_S), replicas))
        for revision in revisions:
            count = sum(ok for (v, _), ok in zip(replicas, answers, strict=True) if v is revision)
            ready.add_metric([revision.name, revision.model_version], float(count))
        return [expected, ready]


def _newest_judged(folder) -> tuple[dt.date, float] | None:
    """The newest day whose kept finding has a severity, and that severity."""
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob("*.json"), reverse=True):
        try:
            day = dt.date.fromisoformat(path.stem)
            severity = json.loads(path.read_text()).get("severity")
        except (ValueError, OSError):
            continue  # a partial or foreign file: the next one
        if severity is not None:
            return day, float(severity)
    return None


def loop_registry(settings: EvergreenSettings):
    """A registry holding only the loop's collector (and the time it was built)."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    registry.register(LoopCollector(settings))
    started = Gauge(
        "evergreen_observe_start_time_seconds",
        "When `evergreen observe` started.",
        registry=registry,
    )
    started.set(time.time())
    return registry
