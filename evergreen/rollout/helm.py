"""Helm values for Dagster's official chart (``dagster/dagster``): the cluster profile's control
plane on Kubernetes, written by ``evergreen helm-values`` and validated offline.

What the values set, each from the setting or constant Evergreen's own dagster.yaml uses
(``evergreen.instance``), so a cluster runs as the tests here do:

- the user code deployment: Evergreen's code location (``definitions.py``) served over gRPC
  from Evergreen's image, with the cluster profile's settings (``EVERGREEN_PROFILE=cluster``;
  the PostgreSQL and Redis URLs from a Secret, never written here; the shared store a
  ReadWriteMany claim mounted at ``SHARED_MOUNT``; each pod's home its own ``emptyDir``), its
  config passed on to the runs it launches;
- PostgreSQL: the cluster's own server (the chart's is off), the password in the chart's
  Secret, made outside the chart;
- the ``K8sRunLauncher``: each run a Kubernetes Job of the user code's image; inside it the
  steps go to the Celery workers as on any cluster host (``evergreen worker``, a Deployment of
  the same image beside the chart: ``worker_deployment``);
- the daemon: the queued run coordinator with Evergreen's run limit, run retries on
  (``RUN_RETRIES``, also on a failed asset), run monitoring on; op pools at one writer.

``validate_helm_values`` checks the values against the chart's schema, vendored in
``schemas/dagster-helm-values.schema.json`` (``schemas/vendor_dagster.py``), its Kubernetes
references (env vars, volumes, probes) resolved to the strict Kubernetes schemas
``kubernetes_validate`` ships, so nothing is fetched.
"""

from __future__ import annotations

import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from evergreen.instance import INSTANCE_YAML, MAX_CONCURRENT_RUNS, RUN_RETRIES
from evergreen.settings import EvergreenSettings

CHART_SCHEMA = Path(__file__).with_name("schemas") / "dagster-helm-values.schema.json"
KUBERNETES_REFS = "https://kubernetesjsonschema.dev/"  # what the chart's schema refers to
KUBERNETES_SCHEMAS = "v1.30.0-local-strict"  # the version the rollout manifests target
GRPC_PORT = 3030
SHARED_MOUNT = "/shared"
HOME_MOUNT = "/var/lib/evergreen"
# The daemon runs no user code: Dagster's own image, at the version the code location runs.
DAEMON_IMAGE = "docker.io/dagster/dagster-celery-k8s"
POSTGRES_IMAGE = ("docker.io/library/postgres", "15")  # the major version tested here


@dataclass(frozen=True)
class HelmOptions:
    """Names the cluster provides around the chart."""

    code_dir: str = "/app"  # Evergreen's checkout inside its image (definitions.py is there)
    secret: str = "evergreen-cluster"  # keys postgres-url and redis-url
    shared_claim: str = "evergreen-shared"  # a ReadWriteMany PersistentVolumeClaim
    namespace: str = "evergreen"


def _split_image(image: str) -> dict[str, Any]:
    repository, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:  # no tag, or the colon was a registry's port
        repository, tag = image, "latest"
    return {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"}


def _cluster_env(options: HelmOptions) -> list[dict[str, Any]]:
    """The cluster profile's settings; the URLs (they may hold passwords) from the Secret."""

    def secret(key: str) -> dict[str, Any]:
        return {"secretKeyRef": {"name": options.secret, "key": key}}

    return [
        {"name": "EVERGREEN_PROFILE", "value": "cluster"},
        {"name": "EVERGREEN_HOME", "value": HOME_MOUNT},
        {"name": "EVERGREEN_SHARED_STORE", "value": SHARED_MOUNT},
        {"name": "EVERGREEN_POSTGRES_URL", "valueFrom": secret("postgres-url")},
        {"name": "EVERGREEN_REDIS_URL", "valueFrom": secret("redis-url")},
    ]


def _volumes(options: HelmOptions) -> tuple[list[dict], list[dict]]:
    volumes = [
        {"name": "shared", "persistentVolumeClaim": {"claimName": options.shared_claim}},
        {"name": "home", "emptyDir": {}},  # one host's own folder: never shared
    ]
    mounts = [
        {"name": "shared", "mountPath": SHARED_MOUNT},
        {"name": "home", "mountPath": HOME_MOUNT},
    ]
    return volumes, mounts


def _postgresql(settings: EvergreenSettings) -> dict[str, Any]:
    url = urlsplit(settings.postgres_url or "postgresql://dagster@dagster-postgresql:5432/dagster")
    repository, tag = POSTGRES_IMAGE
    return {
        "enabled": False,  # the cluster's server, not one the chart starts
        "image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
        "postgresqlHost": url.hostname or "dagster-postgresql",
        "postgresqlUsername": url.username or "postgres",
        "postgresqlPassword": "",  # in the chart's Secret (global.postgresqlSecretName)
        "postgresqlDatabase": url.path.lstrip("/") or "postgres",
        "postgresqlParams": {},
        "service": {"port": url.port or 5432},
    }


def _daemon() -> dict[str, Any]:
    version = importlib.metadata.version("dagster")
    none: dict[str, Any] = {}
    return {
        "enabled": True,
        "image": {"repository": DAEMON_IMAGE, "tag": version, "pullPolicy": "IfNotPresent"},
        "runCoordinator": {
            "enabled": True,
            "type": "QueuedRunCoordinator",
            "config": {"queuedRunCoordinator": {"maxConcurrentRuns": MAX_CONCURRENT_RUNS}},
        },
        "heartbeatTolerance": 1800,
        "env": {},
        "envConfigMaps": [],
        "envSecrets": [],
        "deploymentLabels": {},
        "labels": {},
        "nodeSelector": {},
        "affinity": {},
        "tolerations": [],
        "podSecurityContext": {},
        "securityContext": {},
        "resources": {},
        "livenessProbe": none,
        "readinessProbe": none,
        "startupProbe": none,
        "annotations": {},
        # A run whose pod died is marked failed, so that run retries re-launch it.
        "runMonitoring": {"enabled": True},
        "runRetries": {
            "enabled": True,
            "maxRetries": RUN_RETRIES,
            "retryOnAssetOrOpFailure": True,
        },
        "sensors": {"useThreads": True},
        "schedules": {"useThreads": True},
    }


def dagster_helm_values(
    settings: EvergreenSettings, image: str, options: HelmOptions | None = None
) -> dict[str, Any]:
    """Values for Dagster's chart running Evergreen's code location from ``image``."""
    options = options or HelmOptions()
    volumes, mounts = _volumes(options)
    instance = yaml.safe_load(INSTANCE_YAML)
    code = {
        "name": "evergreen",
        "image": _split_image(image),
        "dagsterApiGrpcArgs": [
            "--python-file",
            "definitions.py",
            "--working-directory",
            options.code_dir,
        ],  # fmt: skip
        "port": GRPC_PORT,
        "includeConfigInLaunchedRuns": {"enabled": True},  # env and volumes reach the runs
        "env": _cluster_env(options),
        "volumes": volumes,
        "volumeMounts": mounts,
    }
    launcher = {
        "imagePullPolicy": "IfNotPresent",
        "loadInclusterConfig": True,
        "jobNamespace": options.namespace,
        "envConfigMaps": [],
        "envSecrets": [],
        "envVars": [],
        "volumeMounts": [],  # the user code's, passed on (includeConfigInLaunchedRuns)
        "volumes": [],
        "failPodOnRunFailure": True,
    }
    return {
        "dagster-user-deployments": {
            "enabled": True,
            "enableSubchart": True,
            "imagePullSecrets": [],
            "deployments": [code],
        },
        "postgresql": _postgresql(settings),
        "generatePostgresqlPasswordSecret": False,
        "runLauncher": {"type": "K8sRunLauncher", "config": {"k8sRunLauncher": launcher}},
        "dagsterDaemon": _daemon(),
        "telemetry": {"enabled": instance["telemetry"]["enabled"]},
        # Dagster's op pools: one warehouse writer at a time, as in the local dagster.yaml.
        "additionalInstanceConfig": {"concurrency": {"pools": instance["concurrency"]["pools"]}},
    }


def worker_deployment(
    image: str, replicas: int = 2, options: HelmOptions | None = None
) -> dict[str, Any]:
    """The Celery workers the runs' steps go to (``evergreen worker``), beside the chart."""
    options = options or HelmOptions()
    volumes, mounts = _volumes(options)
    labels = {
        "app.kubernetes.io/name": "evergreen-worker",
        "app.kubernetes.io/part-of": "evergreen",
    }
    container = {
        "name": "worker",
        "image": image,
        "command": ["evergreen", "worker"],
        "workingDir": options.code_dir,
        "env": _cluster_env(options),
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "evergreen-worker", "namespace": options.namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "evergreen-worker"}},
            "template": {
                "metadata": {"labels": labels},
                # A worker killed mid-step hands its task back (acks late); give it time to.
                "spec": {
                    "containers": [container],
                    "volumes": volumes,
                    "terminationGracePeriodSeconds": 60,
                },
            },
        },
    }


def _kubernetes_definitions() -> dict[str, Any]:
    import kubernetes_validate

    folder = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    schema = json.loads((folder / KUBERNETES_SCHEMAS / "_definitions.json").read_text())
    # The chart's references say ``#/definitions/...``; these schemas keep them in ``$defs``.
    return {**schema, "definitions": schema["$defs"]}


def validate_helm_values(values: dict[str, Any]) -> list[str]:
    """``values`` checked against the vendored chart schema; returns the errors (empty:
    valid)."""
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    kubernetes = Resource.from_contents(
        _kubernetes_definitions(), default_specification=DRAFT202012
    )

    def retrieve(uri: str) -> Resource:
        if uri.startswith(KUBERNETES_REFS) and uri.endswith("/_definitions.json"):
            return kubernetes
        raise LookupError(f"{uri}: not vendored (validation stays offline)")

    validator = jsonschema.Draft7Validator(
        json.loads(CHART_SCHEMA.read_text()), registry=Registry(retrieve=retrieve)
    )
    errors = []
    for found in sorted(validator.iter_errors(values), key=lambda e: list(e.absolute_path)):
        error = jsonschema.exceptions.best_match([found])  # into anyOf: the branch that failed
        path = ".".join(str(p) for p in error.absolute_path)
        errors.append(f"{path or '(values)'}: {error.message}")
    return errors


def render_helm_values(
    settings: EvergreenSettings, image: str, out_dir: Path, options: HelmOptions | None = None
) -> dict[str, Path]:
    """Write ``dagster-values.yaml`` (for ``helm install -f``) and ``workers.yaml``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    values = out_dir / "dagster-values.yaml"
    rendered = dagster_helm_values(settings, image, options)
    values.write_text(yaml.safe_dump(rendered, sort_keys=False))
    workers = out_dir / "workers.yaml"
    workers.write_text(yaml.safe_dump(worker_deployment(image, options=options), sort_keys=False))
    return {"values": values, "workers": workers}
