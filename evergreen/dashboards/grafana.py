"""A Grafana dashboard for teams that run Grafana over Evergreen's Prometheus: serving
throughput, errors and latency per replica, the scores per model version, and the loop's state
(champion age, freshness of data and labels, drift, retrains).

The JSON is generated here from ``metric_names`` (so a renamed metric cannot leave a stale
panel) and committed as ``grafana/evergreen.json`` for import (Dashboards > New > Import);
``python -m evergreen.dashboards.grafana`` rewrites it. ``validate`` checks it against
``grafana/dashboard.schema.json``: a JSON Schema generated from Grafana's own dashboard types
(the npm package ``@grafana/schema``, see ``grafana/README.md``), so the check runs offline.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from evergreen.dashboards import metric_names as m

FOLDER = Path(__file__).with_name("grafana")
DASHBOARD_PATH = FOLDER / "evergreen.json"
SCHEMA_PATH = FOLDER / "dashboard.schema.json"
SCHEMA_VERSION = 42  # @grafana/schema 13.2's defaultDashboard.schemaVersion
UID = "evergreen-overview"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's own range variables are not PromQL: what they stand for when an expression is
# parsed outside Grafana (``parseable``).
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1d"}

PREDICT = f'endpoint="{m.PREDICT_ENDPOINT}"'
RATE = "$__rate_interval"


def _requests(extra: str = "") -> str:
    labels = ",".join(x for x in (PREDICT, extra) if x)
    return f"{m.REQUESTS_TOTAL}{{{labels}}}"


def _share(part: str) -> str:
    """The share of /predict answers whose code matches ``part`` (0 without traffic)."""
    code = f'http_response_code=~"{part}"'
    return (
        f"(sum(rate({_requests(code)}[{RATE}])) or vector(0)) "
        f"/ clamp_min(sum(rate({_requests()}[{RATE}])), 1e-9)"
    )


def _quantile(q: float) -> str:
    buckets = f"{m.REQUEST_DURATION_SECONDS}_bucket{{{PREDICT}}}"
    return f"histogram_quantile({q}, sum by (le) (rate({buckets}[{RATE}])))"


def _scores(part: str) -> str:
    return f"sum by (model_version) (rate({m.FRAUD_PROBABILITY}_{part}[{RATE}]))"


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}


def _panel(
    kind: str,
    title: str,
    description: str,
    targets: list[tuple[str, str]],
    unit: str,
    thresholds: list[tuple[float | None, str]] | None = None,
    decimals: int | None = None,
) -> dict[str, Any]:
    """One panel (``kind``: timeseries or stat); its position is set by ``_layout``."""
    steps = [{"color": c, "value": v} for v, c in (thresholds or [(None, "green")])]
    defaults: dict[str, Any] = {
        "unit": unit,
        "thresholds": {"mode": "absolute", "steps": steps},
        "color": {"mode": "thresholds" if kind == "stat" else "palette-classic"},
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    if kind == "timeseries" and thresholds:
        defaults["custom"] = {"thresholdsStyle": {"mode": "line"}}
    options: dict[str, Any] = {"legend": {"displayMode": "list", "placement": "bottom"}}
    if kind == "stat":
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": [_target(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(targets)],
    }


def _row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def _serving_panels() -> list[dict[str, Any]]:
    per_replica = f"sum by (instance) (rate({_requests()}[{RATE}]))"
    return [
        _row("Serving (every replica the rollout keeps in Prometheus' targets)"),
        _panel(
            "timeseries",
            "Throughput: /predict requests per second",
            "Answered requests per replica; the sum is what the router passes on.",
            [(per_replica, "{{instance}}"), (f"sum(rate({_requests()}[{RATE}]))", "all")],
            "reqps",
        ),
        _panel(
            "timeseries",
            "Errors: share of /predict answered 5xx (and 4xx)",
            "5xx is a serving fault (pages the serving owner); 4xx is a caller's bad request.",
            [(_share("5.."), "5xx"), (_share("4.."), "4xx")],
            "percentunit",
            [(None, "green"), (0.01, "red")],
        ),
        _panel(
            "timeseries",
            "Latency of /predict: p50, p95, p99",
            "From BentoML's request-duration histogram, all replicas together.",
            [(_quantile(q), f"p{round(q * 100)}") for q in (0.5, 0.95, 0.99)],
            "s",
        ),
        _panel(
            "timeseries",
            "Requests in flight",
            "Requests each replica is answering now; a rising line is a replica falling behind.",
            [(f"sum by (instance) ({m.REQUESTS_IN_PROGRESS}{{{PREDICT}}})", "{{instance}}")],
            "short",
        ),
    ]


def _model_panels() -> list[dict[str, Any]]:
    mean = f"{_scores('sum')} / clamp_min({_scores('count')}, 1e-9)"
    flagged = (
        f'1 - sum by (model_version) (rate({m.FRAUD_PROBABILITY}_bucket{{le="0.5"}}[{RATE}])) '
        f"/ clamp_min({_scores('count')}, 1e-9)"
    )
    return [
        _row("Model versions serving"),
        _panel(
            "timeseries",
            "Scored per second, by model version",
            "A canary's share of traffic is its line against the stable one's.",
            [(_scores("count"), "{{model_version}}")],
            "reqps",
        ),
        _panel(
            "timeseries",
            "Mean fraud probability, by model version",
            "A shift between versions serving the same traffic is a changed model, not data.",
            [(mean, "{{model_version}}")],
            "percentunit",
        ),
        _panel(
            "timeseries",
            "Share of scores above 0.5, by model version",
            "From the score histogram's buckets.",
            [(flagged, "{{model_version}}")],
            "percentunit",
        ),
    ]


def _loop_panels() -> list[dict[str, Any]]:
    landed, matured = m.NEWEST_LANDED_DAY_TIMESTAMP, m.NEWEST_MATURED_LABEL_DAY_TIMESTAMP
    retrains = f"sum by (outcome) (increase({m.RETRAINS_TOTAL}[$__range]))"
    return [
        _row("The loop: data, labels, drift, retrains"),
        _panel(
            "stat",
            "Champion age (data days)",
            "Days between the champion's cut-off and the newest labels; the floor retrains it.",
            [(f"max({m.CHAMPION_AGE_DATA_DAYS})", "age")],
            "d",
            [(None, "green"), (7, "orange"), (14, "red")],
            0,
        ),
        _panel(
            "stat",
            "Newest landed day",
            "The newest data day ingested (a data day, not the wall clock).",
            [(f"max({landed}) * 1000", "landed")],
            "dateTimeAsIso",
        ),
        _panel(
            "stat",
            "Newest matured label day",
            "The newest day whose labels landed; quality is judged up to it.",
            [(f"max({matured}) * 1000", "matured")],
            "dateTimeAsIso",
        ),
        _panel(
            "stat",
            "Retrains over the range, by outcome",
            "Accepted retrains and the ones the governor suppressed (cool-down, budget).",
            [(retrains, "{{outcome}}")],
            "short",
            decimals=0,
        ),
        _panel(
            "timeseries",
            "Drift severity: share of features drifted on the last judged day",
            "The drift sensor's finding; the line is where a retrain is considered.",
            [(f"max({m.DRIFT_SEVERITY})", "severity")],
            "percentunit",
            [(None, "green"), (0.3, "red")],
        ),
        _panel(
            "timeseries",
            "Label lag: landed day minus matured label day (days)",
            "Grows when labels stop landing while transactions still do.",
            [(f"(max({landed}) - max({matured})) / 86400", "lag")],
            "d",
        ),
        _panel(
            "timeseries",
            "Champion age over time (data days)",
            "Falls back at each promotion.",
            [(f"max({m.CHAMPION_AGE_DATA_DAYS})", "age")],
            "d",
        ),
    ]


def _layout(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows full width; timeseries two a line (12 wide), stats four a line (6 wide); ids in
    order."""
    x = y = 0
    height = 0
    for i, panel in enumerate(panels, start=1):
        panel["id"] = i
        width, tall = {"row": (24, 1), "stat": (6, 5)}.get(panel["type"], (12, 8))
        if panel["type"] == "row" or x + width > 24:
            x, y = 0, y + height
            height = 0
        panel["gridPos"] = {"h": tall, "w": width, "x": x, "y": y}
        x, height = x + width, max(height, tall)
        if panel["type"] == "row":
            x, y, height = 0, y + tall, 0
    return panels


def dashboard() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (``SCHEMA_VERSION``), with a Prometheus data
    source variable so it imports on any Grafana."""
    panels = _layout([*_serving_panels(), *_model_panels(), *_loop_panels()])
    datasource = {
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "hide": 0,
        "options": [],
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
    }
    return {
        "uid": UID,
        "title": "Evergreen: serving and the loop",
        "description": "Latency, throughput and errors of the fraud bento's replicas, scores "
        "per model version, and the continuous-training loop's state. Model quality over "
        "time is on the Evidently UI (`make ui`).",
        "tags": ["evergreen", "serving", "mlops"],
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "utc",
        "version": 1,
        "weekStart": "",
        "links": [],
        "annotations": {"list": []},
        "templating": {"list": [datasource]},
        "panels": panels,
    }


def render() -> str:
    """The dashboard's JSON text, as committed."""
    return json.dumps(dashboard(), indent=2, sort_keys=True) + "\n"


def write(path: Path = DASHBOARD_PATH) -> Path:
    path.write_text(render())
    return path


def validate(data: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``data`` fits Grafana's dashboard schema."""
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.validate(data, schema, cls=jsonschema.Draft7Validator)


def expressions(data: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard's panels, in panel order."""
    return [t["expr"] for p in data["panels"] for t in p.get("targets", [])]


def parseable(expr: str) -> str:
    """``expr`` with Grafana's range variables replaced by durations, as PromQL."""
    return re.sub(
        r"\$__(rate_interval|interval|range)\b", lambda g: GRAFANA_VARIABLES[g.group(0)], expr
    )


if __name__ == "__main__":
    print(write())
