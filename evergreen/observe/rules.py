"""Prometheus's rules: recording rules for the edge and each revision, and tiered alerts.

Every alert carries ``severity`` (``page``: someone acts now, serving is hurt; ``ticket``: the
loop needs a person within the day) and ``owner`` (``serving``: replicas, router, rollouts;
``model``: drift, quality, retraining; ``data``: landing and labels), and a ``runbook``
annotation saying what to do first. Alertmanager routes on those two labels
(``evergreen.observe.config``).

Thresholds come from the settings and the retrain policy, so an alert fires at the level the
loop itself acts on (drift and decay at the policy's ``enter`` levels, the champion's age at
the retrain floor); ``RuleTiming`` holds the windows and ``for:`` durations, which a test
shortens to seconds. The page on latency waits ``p99_for`` (5 minutes): a p99 over budget for
one scrape is noise, for five minutes it is what users feel.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from evergreen.settings import EvergreenSettings

# The daily feeds' freshness: the daily assets' fail window in the Dagster UI (definitions.py)
# and the DataLate alert are the same policy.
DAILY_FAIL_WINDOW = dt.timedelta(hours=36)
DAILY_WARN_WINDOW = dt.timedelta(hours=26)

OWNERS = ("serving", "model", "data")
SEVERITIES = ("page", "ticket")
EDGE = 'job="caddy",role="edge",server="edge"'
PREDICT = 'job="replica",endpoint="/predict"'


@dataclass(frozen=True)
class RuleTiming:
    """Windows and ``for:`` durations (Prometheus durations: ``30s``, ``5m``)."""

    window: str = "2m"  # rate() windows of the recording rules
    page_for: str = "1m"
    p99_for: str = "5m"
    ticket_for: str = "10m"

    @staticmethod
    def quick() -> RuleTiming:
        """Seconds instead of minutes, for a test on a 1 s scrape and evaluation interval."""
        return RuleTiming(window="4s", page_for="2s", p99_for="3s", ticket_for="2s")


@dataclass(frozen=True)
class Thresholds:
    """Where alerts fire."""

    error_ratio: float = 0.05  # of edge requests answered 5xx
    replica_error_ratio: float = 0.05  # of one replica's /predict answers
    p99_budget_s: float = 0.1
    drift_enter: float = 0.3
    performance_enter: float = 0.2
    champion_floor_days: int = 7
    data_freshness_s: float = DAILY_FAIL_WINDOW.total_seconds()
    missing_features_ratio: float = 0.2

    @staticmethod
    def of(settings: EvergreenSettings, **overrides) -> Thresholds:
        """The settings' and the retrain policy's levels (``overrides`` win)."""
        from evergreen.loop.retrain_policy import RetrainPolicy

        policy = RetrainPolicy()
        levels = {
            "p99_budget_s": settings.serve_p99_budget_ms / 1000,
            "drift_enter": policy.drift_enter,
            "performance_enter": policy.performance_enter,
            "champion_floor_days": settings.retrain_floor_days,
        }
        return Thresholds(**{**levels, **overrides})


def recording_rules(timing: RuleTiming) -> list[dict]:
    """Rates, ratios and p99s the alerts and dashboards read."""
    w = timing.window
    edge_count = f"caddy_http_request_duration_seconds_count{{{EDGE}}}"
    by_rev = "revision, model_version"
    return [
        {"record": "evergreen:edge_requests:rate", "expr": f"sum(rate({edge_count}[{w}]))"},
        {
            "record": "evergreen:edge_errors:ratio",
            "expr": f'sum(rate(caddy_http_request_duration_seconds_count{{{EDGE},code=~"5.."}}'
            f"[{w}])) / sum(rate({edge_count}[{w}]))",
        },
        {
            "record": "evergreen:edge_latency_p99:seconds",
            "expr": "histogram_quantile(0.99, sum by (le) "
            f"(rate(caddy_http_request_duration_seconds_bucket{{{EDGE}}}[{w}])))",
        },
        {
            "record": "evergreen:replica_errors:ratio",
            "expr": "sum by (revision, replica, model_version) (rate(evergreen_request_total"
            f'{{{PREDICT},http_response_code=~"5.."}}[{w}])) / sum by (revision, replica, '
            f"model_version) (rate(evergreen_request_total{{{PREDICT}}}[{w}]))",
        },
        {
            "record": "evergreen:revision_requests:rate",
            "expr": f"sum by ({by_rev}) (rate(evergreen_request_total{{{PREDICT}}}[{w}]))",
        },
        {
            "record": "evergreen:revision_latency_p99:seconds",
            "expr": f"histogram_quantile(0.99, sum by ({by_rev}, le) "
            f"(rate(evergreen_request_duration_seconds_bucket{{{PREDICT}}}[{w}])))",
        },
        {
            "record": "evergreen:missing_features:ratio",
            "expr": f"sum by (model_version) (rate(evergreen_missing_features_total[{w}])) / "
            f"sum by (model_version) (rate(evergreen_fraud_probability_count[{w}]))",
        },
        {
            "record": "evergreen:ready_replicas:sum",
            "expr": "sum(evergreen_ready_replicas) or vector(0)",
        },
    ]


def _alert(
    name: str,
    expr: str,
    duration: str,
    severity: str,
    owner: str,
    summary: str,
    runbook: str,
) -> dict:
    assert severity in SEVERITIES and owner in OWNERS
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity, "owner": owner},
        "annotations": {"summary": summary, "runbook": runbook},
    }


def page_alerts(t: Thresholds, timing: RuleTiming) -> list[dict]:
    """What wakes someone: serving is failing users now."""
    return [
        _alert(
            "ServingErrorRate",
            f"evergreen:edge_errors:ratio > {t.error_ratio}",
            timing.page_for,
            "page",
            "serving",
            f"{{{{ $value | humanizePercentage }}}} of requests at the edge answered 5xx "
            f"(more than {t.error_ratio:.0%})",
            "`evergreen status` names dead or failing replicas; `evergreen rollback` if a "
            "rollout just started it, else restart the failing revision (`evergreen serve`).",
        ),
        _alert(
            "NoRevisionReady",
            "evergreen:ready_replicas:sum == 0 and on() max(evergreen_serving_expected) == 1",
            timing.page_for,
            "page",
            "serving",
            "no replica of any live revision answers /readyz: nothing can serve",
            "Read the replicas' logs (`evergreen status` lists them); `evergreen serve` "
            "restarts what died, `evergreen rollback` serves the previous champion.",
        ),
        _alert(
            "ServingLatencyP99",
            f"evergreen:edge_latency_p99:seconds > {t.p99_budget_s}",
            timing.p99_for,
            "page",
            "serving",
            f"p99 at the edge is {{{{ $value | humanizeDuration }}}}, over the "
            f"{t.p99_budget_s * 1000:.0f} ms budget",
            "Compare evergreen:revision_latency_p99:seconds per revision: one slow revision "
            "-> roll it back; all slow -> the host is overloaded, add replicas.",
        ),
    ]


def ticket_alerts(t: Thresholds, timing: RuleTiming) -> list[dict]:
    """What a person looks at within the day: the loop needs a hand."""
    d = timing.ticket_for
    return [
        _alert(
            "ReplicaErrors",
            f"evergreen:replica_errors:ratio > {t.replica_error_ratio}",
            timing.page_for,
            "ticket",
            "serving",
            "replica {{ $labels.revision }}/{{ $labels.replica }} answers "
            "{{ $value | humanizePercentage }} of /predict with 5xx",
            "Read that replica's log (`evergreen status`); kill it and the watchdog starts "
            "it again.",
        ),
        _alert(
            "DriftAboveEnter",
            f"evergreen_drift_severity >= {t.drift_enter}",
            d,
            "ticket",
            "model",
            f"{{{{ $value | humanizePercentage }}}} of features drifted on the newest judged "
            f"day (enter level {t.drift_enter:.0%})",
            "Check `evergreen retrains` for the retrain the policy took (or why it held "
            "back) and the drift report in the model_monitoring asset.",
        ),
        _alert(
            "PerformanceDecay",
            f"evergreen_performance_decay >= {t.performance_enter}",
            d,
            "ticket",
            "model",
            "the champion's live AP dropped {{ $value | humanizePercentage }} against its "
            f"evaluation (enter level {t.performance_enter:.0%})",
            "Look at the performance finding per segment (reports/monitoring/performance); "
            "a retrain should follow (`evergreen retrains`), else retrain by hand.",
        ),
        _alert(
            "DataLate",
            f"time() - evergreen_last_landing_timestamp_seconds > {t.data_freshness_s:g}",
            d,
            "ticket",
            "data",
            "nothing landed for {{ $labels.feed }} for {{ $value | humanizeDuration }} "
            f"(freshness {t.data_freshness_s:g} s)",
            "Ask the feed's producer; check the landing zone and `evergreen quarantine list` "
            "(a rejected file is set aside, not lost).",
        ),
        _alert(
            "RetrainFailed",
            'evergreen_job_last_run_failed{dagster_job="retrain"} == 1',
            d,
            "ticket",
            "model",
            "the newest retrain run failed; the champion keeps serving",
            "Open the failed run in the Dagster UI (`evergreen ui`), fix, re-run the retrain "
            "job for its cut-off.",
        ),
        _alert(
            "DeployFailed",
            'evergreen_job_last_run_failed{dagster_job="deploy"} == 1 '
            "or evergreen_rollout_last_failed == 1",
            d,
            "ticket",
            "serving",
            "the newest deploy or rollout failed or rolled back; the previous revision serves",
            "`evergreen history` says which step failed and why; fix and `evergreen deploy` again.",
        ),
        _alert(
            "ChampionStale",
            f"evergreen_champion_age_data_days > {t.champion_floor_days}",
            d,
            "ticket",
            "model",
            "the champion's cut-off is {{ $value }} data days behind the newest labels "
            f"(floor {t.champion_floor_days})",
            "The retrain floor asked and nothing was promoted: read `evergreen retrains` and "
            "the gate's decision (`evergreen models`).",
        ),
        _alert(
            "MissingFeatures",
            f"evergreen:missing_features:ratio > {t.missing_features_ratio}",
            d,
            "ticket",
            "data",
            "{{ $value | humanizePercentage }} of transactions scored by {{ "
            "$labels.model_version }} had a feature view missing",
            "Check the online_features materialization in the Dagster UI: the online store "
            "is behind.",
        ),
    ]


def rule_groups(t: Thresholds, timing: RuleTiming, interval: str | None = None) -> dict:
    """The rule file: recording rules first (alerts read them), then each tier."""
    extra = {"interval": interval} if interval else {}
    return {
        "groups": [
            {"name": "evergreen-recording", **extra, "rules": recording_rules(timing)},
            {"name": "evergreen-page", **extra, "rules": page_alerts(t, timing)},
            {"name": "evergreen-ticket", **extra, "rules": ticket_alerts(t, timing)},
        ]
    }
