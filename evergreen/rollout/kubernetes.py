"""The ``kubernetes`` target: manifests a cluster rolls out by itself.

``render_manifests`` writes the same rollout in Kubernetes terms, for the containerized bento:

- ``deployment`` flavour: a ``Deployment`` with ``RollingUpdate`` (``maxUnavailable: 0``, so a
  new pod must be ready before an old one goes), readiness (``/readyz``), liveness
  (``/livez``) and startup probes, a ``preStop`` sleep that lets endpoints drop the pod before
  SIGTERM (the drain), and ``terminationGracePeriodSeconds`` covering drain and shutdown; and
  its ``Service``;
- ``rollout`` flavour: an Argo Rollouts ``Rollout`` with the same pod template and canary steps
  (``setWeight`` and ``pause`` per step), with its stable and canary ``Service``\\ s, and an
  ``AnalysisTemplate`` run in the background from the first step on: the canary's 5xx share,
  its p99 and the shift of its mean fraud probability against the stable pods, from the bento's
  Prometheus metrics, every ``analysis_interval_s``. A failed measurement aborts the rollout:
  the cluster moves all traffic back to stable by itself, as the local controller does.

The queries select pods by the ``rollouts_pod_template_hash`` label, which Prometheus has when
its Kubernetes pod scrape keeps pod labels (the usual ``labelmap`` of
``__meta_kubernetes_pod_label_(.+)``); the pods carry the ``prometheus.io/*`` scrape
annotations.

``validate_manifests`` checks core kinds against the Kubernetes JSON schemas
(``kubernetes_validate``, strict) and the Rollout against a vendored subset of the Argo
Rollouts CRD schema (``schemas/argo-rollout-v1alpha1.schema.json``, with ``jsonschema``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from evergreen.rollout.revisions import RevisionSpec

CONTAINER_PORT = 3000
ROLLOUT_SCHEMA = Path(__file__).with_name("schemas") / "argo-rollout-v1alpha1.schema.json"
ANALYSIS_SCHEMA = Path(__file__).with_name("schemas") / "argo-analysistemplate-v1alpha1.schema.json"
KUBERNETES_VERSION = "1.30"


@dataclass(frozen=True)
class ClusterOptions:
    """How the revision runs in a cluster."""

    name: str = "fraud-detection"
    namespace: str = "evergreen"
    replicas: int = 2
    canary_steps: tuple[int, ...] = (10, 50, 100)
    step_pause_s: int = 60
    drain_s: int = 10  # preStop sleep: endpoints drop the pod before it gets SIGTERM
    shutdown_s: int = 20  # then BentoML finishes requests in flight
    cpu: str = "500m"
    memory: str = "1Gi"
    # Background analysis (the AnalysisTemplate), the local canary analysis' rules.
    prometheus_address: str = "http://prometheus-server.monitoring.svc.cluster.local"
    analysis_interval_s: int = 60
    analysis_window: str = "2m"
    max_error_rate: float = 0.01
    p99_budget_ms: float = 100.0
    max_score_shift: float = 0.05  # |mean fraud probability, canary - stable|


def _labels(options: ClusterOptions, spec: RevisionSpec) -> dict[str, str]:
    version = spec.model_version.replace(":", "-")[:63].strip("-.")
    return {"app.kubernetes.io/name": options.name, "evergreen/model-version": version}


def pod_template(spec: RevisionSpec, image: str, options: ClusterOptions) -> dict[str, Any]:
    """The pod: the bento's container with probes, a drain before SIGTERM, resources."""
    probe = {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5}
    env = [{"name": k, "value": v} for k, v in sorted(spec.env.items())]
    container = {
        "name": "bento",
        "image": image,
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT}],
        "env": env,
        "readinessProbe": {**probe, "failureThreshold": 2},
        "livenessProbe": {
            "httpGet": {"path": "/livez", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        # Loading the model can take a while: liveness waits until the pod first started.
        "startupProbe": {**probe, "failureThreshold": 60},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(options.drain_s)]}}},
        "resources": {
            "requests": {"cpu": options.cpu, "memory": options.memory},
            "limits": {"memory": options.memory},
        },
    }
    scrape = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(CONTAINER_PORT),
        "prometheus.io/path": "/metrics",
    }
    return {
        "metadata": {"labels": _labels(options, spec), "annotations": scrape},
        "spec": {
            "containers": [container],
            "terminationGracePeriodSeconds": options.drain_s + options.shutdown_s,
        },
    }


def _metadata(name: str, options: ClusterOptions) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": options.namespace,
        "labels": {
            "app.kubernetes.io/name": options.name,
            "app.kubernetes.io/part-of": "evergreen",
        },
    }


def _service(name: str, options: ClusterOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, options),
        "spec": {
            "selector": {"app.kubernetes.io/name": options.name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def deployment_manifests(
    spec: RevisionSpec, image: str, options: ClusterOptions | None = None
) -> list[dict[str, Any]]:
    """A rolling-update Deployment (never below the wanted ready replicas) and its Service."""
    options = options or ClusterOptions()
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(options.name, options),
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": options.name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": pod_template(spec, image, options),
        },
    }
    return [deployment, _service(options.name, options)]


PREDICT = 'endpoint="/predict"'


def _pods(role: str) -> str:
    return f'rollouts_pod_template_hash="{{{{args.{role}-hash}}}}"'


def _mean_score(role: str, window: str) -> str:
    scores = f"evergreen_fraud_probability_%s{{{_pods(role)}}}[{window}]"
    return f"(sum(rate({scores % 'sum'})) / sum(rate({scores % 'count'})))"


def analysis_queries(options: ClusterOptions) -> dict[str, tuple[str, str]]:
    """The analysis metrics: name -> (PromQL, Argo's successCondition). No traffic yet reads
    as passing (an empty rate is 0, a quantile or mean of nothing NaN)."""
    window = options.analysis_window
    canary = _pods("canary")
    requests = f"evergreen_request_total{{{PREDICT},{canary}"
    errors = (
        f'(sum(rate({requests},http_response_code=~"5.."}}[{window}])) or vector(0)) '
        f"/ clamp_min(sum(rate({requests}}}[{window}])), 1e-9) or vector(0)"
    )
    buckets = f"evergreen_request_duration_seconds_bucket{{{PREDICT},{canary}}}"
    p99 = f"histogram_quantile(0.99, sum by (le) (rate({buckets}[{window}])))"
    shift = f"abs({_mean_score('canary', window)} - {_mean_score('stable', window)})"
    budget_s = options.p99_budget_ms / 1000
    return {
        "error-rate": (errors, f"result[0] <= {options.max_error_rate}"),
        "p99-latency": (p99, f"isNaN(result[0]) || result[0] <= {budget_s}"),
        "score-shift": (shift, f"isNaN(result[0]) || result[0] <= {options.max_score_shift}"),
    }


def analysis_template(options: ClusterOptions | None = None) -> dict[str, Any]:
    """The AnalysisTemplate the Rollout runs in the background: each metric measured every
    interval, one failure aborts the rollout (traffic back to stable)."""
    options = options or ClusterOptions()
    metrics = [
        {
            "name": name,
            "interval": f"{options.analysis_interval_s}s",
            "failureLimit": 0,
            "consecutiveErrorLimit": 3,
            "successCondition": condition,
            "provider": {"prometheus": {"address": options.prometheus_address, "query": query}},
        }
        for name, (query, condition) in analysis_queries(options).items()
    ]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": _metadata(f"{options.name}-analysis", options),
        "spec": {
            "args": [{"name": "canary-hash"}, {"name": "stable-hash"}],
            "metrics": metrics,
        },
    }


def rollout_manifests(
    spec: RevisionSpec, image: str, options: ClusterOptions | None = None
) -> list[dict[str, Any]]:
    """An Argo Rollouts canary (weights and pauses per step, background analysis) with its
    AnalysisTemplate and stable and canary Services."""
    options = options or ClusterOptions()
    steps: list[dict[str, Any]] = []
    for weight in options.canary_steps:
        steps.append({"setWeight": weight})
        if weight < 100:
            steps.append({"pause": {"duration": f"{options.step_pause_s}s"}})
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": _metadata(options.name, options),
        "spec": {
            "replicas": options.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": {"app.kubernetes.io/name": options.name}},
            "template": pod_template(spec, image, options),
            "strategy": {
                "canary": {
                    "stableService": f"{options.name}-stable",
                    "canaryService": f"{options.name}-canary",
                    "maxUnavailable": 0,
                    "maxSurge": 1,
                    "analysis": {
                        "templates": [{"templateName": f"{options.name}-analysis"}],
                        "startingStep": 1,  # once the canary has traffic
                        "args": [
                            {"name": f"{role}-hash", "valueFrom": {"podTemplateHashValue": hash_}}
                            for role, hash_ in (("canary", "Latest"), ("stable", "Stable"))
                        ],
                    },
                    "steps": steps,
                }
            },
        },
    }
    services = [_service(f"{options.name}-{role}", options) for role in ("stable", "canary")]
    return [rollout, analysis_template(options), *services]


def render_manifests(
    spec: RevisionSpec, image: str, out_dir: Path, options: ClusterOptions | None = None
) -> dict[str, Path]:
    """Write both flavours as multi-document YAML files; returns {flavour: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    flavours = {
        "deployment": deployment_manifests(spec, image, options),
        "rollout": rollout_manifests(spec, image, options),
    }
    paths = {}
    for flavour, manifests in flavours.items():
        path = out_dir / f"{flavour}.yaml"
        path.write_text(yaml.safe_dump_all(manifests, sort_keys=False))
        paths[flavour] = path
    return paths


def validate_manifests(manifests: list[dict[str, Any]]) -> list[str]:
    """Every manifest checked against its schema; returns the errors (empty: all valid)."""
    import jsonschema
    import kubernetes_validate

    argo = {
        "Rollout": json.loads(ROLLOUT_SCHEMA.read_text()),
        "AnalysisTemplate": json.loads(ANALYSIS_SCHEMA.read_text()),
    }
    errors = []
    for manifest in manifests:
        where = f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"
        try:
            if manifest.get("apiVersion", "").startswith("argoproj.io/"):
                schema = argo.get(manifest.get("kind"))
                if schema is None:
                    errors.append(f"{where}: no vendored schema for {manifest.get('kind')}")
                    continue
                jsonschema.validate(manifest, schema)
            else:
                kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
            path = ".".join(str(p) for p in error.absolute_path)
            errors.append(f"{where}: {path}: {error.message}")
    return errors
