"""The rule file as Prometheus reads it: ``promtool check rules`` accepts it, and ``promtool
test rules`` (a real Prometheus rule engine, Debian's package) shows each alert firing on the
series of its fault, with its severity and owner, and staying silent on healthy series."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from evergreen.observe.config import ObserveConfig, alertmanager_config
from evergreen.observe.rules import OWNERS, SEVERITIES, RuleTiming, Thresholds, rule_groups
from tests.servers import ensure_debian

THRESHOLDS = Thresholds(p99_budget_s=0.1, data_freshness_s=3600, champion_floor_days=7)
TIMING = RuleTiming(window="1m", page_for="1m", p99_for="5m", ticket_for="2m")
EDGE = 'job="caddy",role="edge",server="edge"'


def _alerts(groups: dict) -> list[dict]:
    return [r for g in groups["groups"] for r in g["rules"] if "alert" in r]


def _promtool(*args: str, cwd) -> subprocess.CompletedProcess:
    ensure_debian("promtool", "prometheus")
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("timing", [RuleTiming(), RuleTiming.quick()], ids=["default", "quick"])
def test_promtool_accepts_the_rule_file(tmp_path, timing):
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rule_groups(Thresholds(), timing)))
    run = _promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_alertmanager_accepts_its_routes_and_every_tier_and_owner_has_one(tmp_path):
    ensure_debian("amtool", "prometheus-alertmanager")
    config = alertmanager_config(ObserveConfig(), "http://127.0.0.1:1/alerts")
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        ["amtool", "check-config", "alertmanager.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    routes = {r["receiver"]: r["matchers"] for r in config["route"]["routes"]}
    for severity in SEVERITIES:
        for owner in OWNERS:
            assert routes[f"{severity}-{owner}"] == [f'severity="{severity}"', f'owner="{owner}"']
    hooks = [h for r in config["receivers"] for h in r["webhook_configs"]]
    assert all(h["send_resolved"] for h in hooks)  # resolutions are recorded too


def test_every_alert_is_tiered_owned_and_has_a_runbook():
    alerts = _alerts(rule_groups(Thresholds(), RuleTiming()))
    names = {a["alert"] for a in alerts}
    assert {"ServingErrorRate", "NoRevisionReady", "ServingLatencyP99"} <= names
    assert {"DriftAboveEnter", "PerformanceDecay", "DataLate", "RetrainFailed"} <= names
    assert {"DeployFailed", "ChampionStale"} <= names
    for alert in alerts:
        assert alert["labels"]["severity"] in SEVERITIES, alert["alert"]
        assert alert["labels"]["owner"] in OWNERS, alert["alert"]
        assert len(alert["annotations"]["runbook"].split()) >= 5, alert["alert"]
    pages = {a["alert"] for a in alerts if a["labels"]["severity"] == "page"}
    assert pages == {"ServingErrorRate", "NoRevisionReady", "ServingLatencyP99"}
    p99 = next(a for a in alerts if a["alert"] == "ServingLatencyP99")
    assert p99["for"] == "5m"  # over budget for five minutes, not one bad scrape


def _edge(ok: int, errors: int, slow: int) -> list[dict]:
    """Edge requests per 15 s: ``ok`` 200s and ``errors`` 502s, ``slow`` of all over 0.1 s."""
    series = []
    for code, count in (("200", ok), ("502", errors)):
        base = f'{EDGE},code="{code}",handler="reverse_proxy",method="POST"'
        fast = max(0, count - slow) if code == "200" else count
        buckets = {"0.05": fast, "0.1": fast, "0.25": count, "+Inf": count}
        for le, n in buckets.items():
            series.append(
                {
                    "series": f'caddy_http_request_duration_seconds_bucket{{{base},le="{le}"}}',
                    "values": f"0+{n}x60",
                }
            )
        count_series = f"caddy_http_request_duration_seconds_count{{{base}}}"
        series.append({"series": count_series, "values": f"0+{count}x60"})
    return series


def _gauge(series: str, value: float) -> dict:
    return {"series": series, "values": f"{value}x60"}


def _fires(name: str, at: str, labels: dict, owner: str, severity: str) -> dict:
    exp = {"severity": severity, "owner": owner, **labels}
    return {"eval_time": at, "alertname": name, "exp_alerts": [{"exp_labels": exp}]}


def _silent(name: str, at: str) -> dict:
    return {"eval_time": at, "alertname": name, "exp_alerts": []}


def _case(series: list[dict], checks: list[dict]) -> dict:
    return {"interval": "15s", "input_series": series, "alert_rule_test": checks}


def test_each_alert_fires_on_its_fault_and_is_silent_when_healthy(tmp_path):
    groups = rule_groups(THRESHOLDS, TIMING)
    for alert in _alerts(groups):  # the runbook texts are checked above; compare labels here
        alert.pop("annotations")
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(groups))
    replica = 'job="replica",endpoint="/predict",revision="r2",replica="0",model_version="v2"'
    faults = [
        *_edge(ok=54, errors=6, slow=0),  # 10 % 5xx at the edge
        {
            "series": f'evergreen_request_total{{{replica},http_response_code="500"}}',
            "values": "0+30x60",
        },  # fmt: skip
        {
            "series": f'evergreen_request_total{{{replica},http_response_code="200"}}',
            "values": "0+30x60",
        },  # fmt: skip
        _gauge('evergreen_ready_replicas{revision="r1",model_version="v1"}', 0),
        _gauge("evergreen_serving_expected", 1),
        _gauge("evergreen_drift_severity", 0.45),
        _gauge("evergreen_performance_decay", 0.25),
        _gauge('evergreen_last_landing_timestamp_seconds{feed="transactions"}', -7200),
        _gauge('evergreen_job_last_run_failed{dagster_job="retrain"}', 1),
        _gauge('evergreen_job_last_run_failed{dagster_job="deploy"}', 0),
        _gauge('evergreen_rollout_last_failed{revision="r3"}', 1),
        _gauge('evergreen_champion_age_data_days{model_version="m1"}', 9),
    ]
    slow = _edge(ok=60, errors=0, slow=2)  # p99 in (0.1, 0.25] s: over the 100 ms budget
    healthy = [
        *_edge(ok=60, errors=0, slow=0),
        _gauge('evergreen_ready_replicas{revision="r1",model_version="v1"}', 2),
        _gauge("evergreen_serving_expected", 1),
        _gauge("evergreen_drift_severity", 0.1),
        _gauge("evergreen_performance_decay", 0.05),
        _gauge('evergreen_last_landing_timestamp_seconds{feed="transactions"}', 0),
        _gauge('evergreen_job_last_run_failed{dagster_job="retrain"}', 0),
        _gauge('evergreen_job_last_run_failed{dagster_job="deploy"}', 0),
        _gauge('evergreen_rollout_last_failed{revision="r3"}', 0),
        _gauge('evergreen_champion_age_data_days{model_version="m1"}', 6),
    ]
    at = "10m"
    fired = [
        _fires("ServingErrorRate", at, {}, "serving", "page"),
        _fires("NoRevisionReady", at, {}, "serving", "page"),
        _fires(
            "ReplicaErrors",
            at,
            {"revision": "r2", "replica": "0", "model_version": "v2"},
            "serving",
            "ticket",
        ),  # fmt: skip
        _fires("DriftAboveEnter", at, {}, "model", "ticket"),
        _fires("PerformanceDecay", at, {}, "model", "ticket"),
        _fires("DataLate", at, {"feed": "transactions"}, "data", "ticket"),
        _fires("RetrainFailed", at, {"dagster_job": "retrain"}, "model", "ticket"),
        _fires("DeployFailed", at, {"revision": "r3"}, "serving", "ticket"),
        _fires("ChampionStale", at, {"model_version": "m1"}, "model", "ticket"),
    ]
    quiet = [_silent(a["alert"], at) for a in _alerts(groups)]
    latency = [
        _silent("ServingLatencyP99", "4m"),  # over budget, but not for 5 minutes yet
        _fires("ServingLatencyP99", at, {}, "serving", "page"),
        _silent("ServingErrorRate", at),
    ]
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "15s",
        "tests": [_case(faults, fired), _case(healthy, quiet), _case(slow, latency)],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))

    run = _promtool("test", "rules", "test.yml", cwd=tmp_path)

    assert run.returncode == 0, run.stdout + run.stderr
