"""The Rollout's analysis queries evaluated by a real Prometheus engine (``promtool test
rules``, Debian's prometheus package, installed when missing): on synthetic series of the
bento's metrics, a canary with 5xx, a slow p99 or shifted scores fails each metric's
condition, and a healthy one passes them all. The queries are the AnalysisTemplate's own, with
Argo's ``{{args.*}}`` filled in as Argo fills them."""

from __future__ import annotations

import re
import subprocess

import yaml

from evergreen.rollout.kubernetes import ClusterOptions, analysis_queries
from tests.servers import ensure_debian

OPTIONS = ClusterOptions(p99_budget_ms=100, max_error_rate=0.01, max_score_shift=0.05)
STEPS = "0+{}x40"  # a counter growing by {} every 15 s, 10 minutes long


def _failing_expr(query: str, condition: str) -> str:
    """The alert expression of a metric: its value breaks the successCondition's bound (a NaN
    compares false: no traffic passes, as ``isNaN(result[0]) ||`` says)."""
    bound = re.search(r"<= ([0-9.]+)$", condition).group(1)
    return f"({query}) > {bound}"


def _rules(canaries: dict[str, str]) -> dict:
    rules = []
    for case, canary in canaries.items():
        for name, (query, condition) in analysis_queries(OPTIONS).items():
            filled = query.replace("{{args.canary-hash}}", canary)
            filled = filled.replace("{{args.stable-hash}}", "stable")
            rules.append({"alert": f"{name}_{case}", "expr": _failing_expr(filled, condition)})
    return {"groups": [{"name": "analysis", "rules": rules}]}


def _pod_series(pod: str, errors: int, slow: int, score_sum: int) -> list[dict]:
    """60 requests per 15 s on ``pod``: ``errors`` of them 5xx, ``slow`` of them over 0.25 s,
    scores summing to ``score_sum``."""
    base = f'endpoint="/predict",rollouts_pod_template_hash="{pod}"'
    series = {
        f'evergreen_request_total{{{base},http_response_code="200"}}': 60 - errors,
        f'evergreen_request_total{{{base},http_response_code="500"}}': errors,
        f'evergreen_request_duration_seconds_bucket{{{base},le="0.025"}}': 60 - slow,
        f'evergreen_request_duration_seconds_bucket{{{base},le="0.5"}}': 60,
        f'evergreen_request_duration_seconds_bucket{{{base},le="+Inf"}}': 60,
        f'evergreen_fraud_probability_sum{{rollouts_pod_template_hash="{pod}"}}': score_sum,
        f'evergreen_fraud_probability_count{{rollouts_pod_template_hash="{pod}"}}': 60,
    }
    return [{"series": s, "values": STEPS.format(v)} for s, v in series.items()]


def test_the_analysis_fails_a_bad_canary_and_passes_a_good_one(tmp_path):
    ensure_debian("promtool", "prometheus")
    canaries = {"errors": "c-errors", "slow": "c-slow", "shifted": "c-shifted", "good": "c-good"}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(_rules(canaries)))
    series = (
        _pod_series("stable", errors=0, slow=0, score_sum=3)
        + _pod_series("c-errors", errors=3, slow=0, score_sum=3)  # 5 % 5xx
        + _pod_series("c-slow", errors=0, slow=3, score_sum=3)  # p99 in (0.025, 0.5] s
        + _pod_series("c-shifted", errors=0, slow=0, score_sum=9)  # mean 0.15 against 0.05
        + _pod_series("c-good", errors=0, slow=0, score_sum=4)  # mean 0.067: within 0.05
    )
    fired = {"error-rate_errors", "p99-latency_slow", "score-shift_shifted"}
    checks = [
        {"eval_time": "5m", "alertname": f"{name}_{case}", "exp_alerts": []}
        for case in canaries
        for name in analysis_queries(OPTIONS)
    ]
    for check in checks:
        if check["alertname"] in fired:
            check["exp_alerts"] = [{"exp_labels": {}}]
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "15s",
        "tests": [{"interval": "15s", "input_series": series, "alert_rule_test": checks}],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))

    run = subprocess.run(
        ["promtool", "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout + run.stderr
