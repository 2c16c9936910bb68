"""Helm values for Dagster's official chart, validated offline against the chart's vendored
schema (its Kubernetes references resolved to the strict Kubernetes schemas): what Evergreen
renders is valid, carries the cluster profile's own settings, and a wrong value fails."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from evergreen.instance import MAX_CONCURRENT_RUNS, RUN_RETRIES
from evergreen.rollout.helm import dagster_helm_values, validate_helm_values, worker_deployment
from evergreen.rollout.kubernetes import validate_manifests
from evergreen.settings import EvergreenSettings

IMAGE = "registry.example:5000/evergreen:1.2"


def _cluster(tmp_path) -> EvergreenSettings:
    return EvergreenSettings(
        home=tmp_path, profile="cluster", redis_url="redis://redis.evergreen:6379/0",
        postgres_url="postgresql://ev:s3cret@pg.evergreen:5433/evergreen",
    )  # fmt: skip


def test_the_values_validate_and_carry_the_cluster_profile(tmp_path):
    values = dagster_helm_values(_cluster(tmp_path), IMAGE)

    assert validate_helm_values(values) == []
    assert validate_manifests([worker_deployment(IMAGE)]) == []
    [code] = values["dagster-user-deployments"]["deployments"]
    assert code["image"]["repository"] == "registry.example:5000/evergreen"
    assert code["image"]["tag"] == "1.2"
    env = {e["name"]: e for e in code["env"]}
    assert env["EVERGREEN_PROFILE"]["value"] == "cluster"
    assert "secretKeyRef" in env["EVERGREEN_POSTGRES_URL"]["valueFrom"]
    assert "s3cret" not in yaml.safe_dump(values)  # passwords stay in Secrets
    pg = values["postgresql"]
    assert (pg["postgresqlHost"], pg["service"]["port"], pg["postgresqlDatabase"]) == (
        "pg.evergreen", 5433, "evergreen"
    )  # fmt: skip
    daemon = values["dagsterDaemon"]
    assert daemon["runRetries"]["maxRetries"] == RUN_RETRIES  # as the instance's dagster.yaml
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["maxConcurrentRuns"] == MAX_CONCURRENT_RUNS
    assert values["runLauncher"]["type"] == "K8sRunLauncher"


def test_a_wrong_value_fails_validation(tmp_path):
    values = dagster_helm_values(_cluster(tmp_path), IMAGE)
    [code] = values["dagster-user-deployments"]["deployments"]
    values["runLauncher"]["type"] = "CeleryRunLauncher"  # no such launcher
    code["port"] = "3030"  # a string
    code["env"][3]["valueFrom"]["secretKeyRef"]["kye"] = "x"  # Kubernetes' EnvVar, strict
    del values["postgresql"]["postgresqlHost"]  # required in the section
    values["dagsterDaemon"]["runRetires"] = {}  # misspelt: the section is closed

    errors = validate_helm_values(values)

    assert len(errors) == 5, errors
    joined = "\n".join(errors)
    expected_in = (
        "CeleryRunLauncher",
        "'3030' is not of type 'integer'",
        "kye",
        "'postgresqlHost' is a required",
        "runRetires",
    )
    for expected in expected_in:
        assert expected in joined, (expected, errors)


def test_the_command_writes_valid_values(tmp_path, monkeypatch):
    from evergreen.cli import app
    from evergreen.settings import get_settings

    monkeypatch.setenv("EVERGREEN_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    out = tmp_path / "helm"
    try:
        shown = CliRunner().invoke(app, ["helm-values", "--image", IMAGE, "--out", str(out)])
    finally:
        get_settings.cache_clear()

    assert shown.exit_code == 0, shown.output
    assert "valid" in shown.output and "INVALID" not in shown.output
    values = yaml.safe_load((out / "dagster-values.yaml").read_text())
    assert validate_helm_values(values) == []
    assert yaml.safe_load((out / "workers.yaml").read_text())["kind"] == "Deployment"
