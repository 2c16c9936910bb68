"""The Grafana dashboard: the committed JSON is the generated one, it fits Grafana's dashboard
schema (generated from Grafana's own types, offline), every PromQL expression parses with
promtool, and it draws every serving and loop metric Evergreen names. Each check is shown to
fail on a broken dashboard."""

import copy
import json
import shutil
import subprocess

import jsonschema
import pytest
import yaml

from evergreen.dashboards import grafana
from evergreen.dashboards import metric_names as m


def _promtool_check(tmp_path, expressions: list[str]) -> subprocess.CompletedProcess:
    """``promtool check rules`` on a rule file recording each expression (Grafana's range
    variables replaced by durations): promtool parses every expression."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make servers` installs Debian's prometheus"
    rules = [
        {"record": f"evergreen_dashboard:expr_{i}", "expr": grafana.parseable(e)}
        for i, e in enumerate(expressions)
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )


def test_the_committed_dashboard_is_the_generated_one():
    assert grafana.DASHBOARD_PATH.read_text() == grafana.render(), (
        "regenerate it: python -m evergreen.dashboards.grafana"
    )


def test_the_dashboard_fits_grafanas_schema_and_a_broken_one_does_not():
    data = json.loads(grafana.DASHBOARD_PATH.read_text())

    grafana.validate(data)

    assert data["schemaVersion"] == grafana.SCHEMA_VERSION
    assert len({p["id"] for p in data["panels"]}) == len(data["panels"])
    for broken in ("grid", "version", "target"):
        bad = copy.deepcopy(data)
        panel = next(p for p in bad["panels"] if p["type"] == "timeseries")
        if broken == "grid":
            del panel["gridPos"]["h"]
        elif broken == "version":
            bad["schemaVersion"] = "42"
        else:
            panel["targets"] = {"expr": "up"}
        with pytest.raises(jsonschema.ValidationError):
            grafana.validate(bad)


def test_every_expression_parses_with_promtool(tmp_path):
    expressions = grafana.expressions(grafana.dashboard())

    result = _promtool_check(tmp_path, expressions)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(expressions)} rules found" in result.stdout
    broken = _promtool_check(tmp_path, [*expressions[:1], "sum(rate(x[5m])"])
    assert broken.returncode != 0


def test_it_draws_latency_throughput_errors_and_the_loops_state():
    text = "\n".join(grafana.expressions(grafana.dashboard()))

    for name in [*m.SERVING_METRICS, *m.LOOP_METRICS, m.FRAUD_PROBABILITY]:
        assert name in text, name
    assert f"{m.REQUEST_DURATION_SECONDS}_bucket" in text  # latency quantiles
    assert 'http_response_code=~"5.."' in text  # errors
