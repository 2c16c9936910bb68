"""The ``bento`` asset and its blocking infra validation, in real Dagster runs.

The check starts the built bento with ``bentoml serve``, replays recent transactions and
compares the served scores with the registry model's offline scores. A bento that serves
another model than it claims must fail the check and block what depends on it.
"""

import pytest
import yaml
from dagster import (
    AssetKey,
    AssetSelection,
    MaterializeResult,
    asset,
    instance_for_test,
    materialize,
)

from assets.serving import bento, serves_like_offline
from evergreen.resources import EvergreenResource


@asset(deps=[bento])
def deployment():
    """Stands for the rollout: must run only after a passing infra validation."""
    return MaterializeResult(metadata={"deployed": True})


@pytest.fixture(scope="module")
def instance():
    """One Dagster instance for the module: the mismatch test checks the bento built before."""
    with instance_for_test() as inst:
        yield inst


def _run(settings, instance, selection=None):
    return materialize(
        [bento, serves_like_offline, deployment],
        instance=instance,
        resources={"evergreen": EvergreenResource(home=str(settings.home))},
        raise_on_error=False,
        selection=selection,
    )


def _materialized(result) -> dict:
    return {
        e.asset_key.to_user_string(): {
            k: v.value for k, v in e.step_materialization_data.materialization.metadata.items()
        }
        for e in result.get_asset_materialization_events()
    }


def test_the_champions_bento_serves_like_offline(serving_home, built_bento, instance):
    result = _run(serving_home.settings, instance)

    failures = [e.event_specific_data.error.message for e in result.get_step_failure_events()]
    assert not failures, failures
    [check] = result.get_asset_check_evaluations()
    assert check.passed, check.metadata["reasons"].value
    materialized = _materialized(result)
    meta = materialized["bento"]
    version = serving_home.champion.split(":")[1]
    assert meta["bento_tag"] == f"fraud_detection:{version}" == built_bento.tag
    assert meta["model_tag"] == serving_home.champion
    assert meta["bento_size_bytes"] > 0 and meta["model_size_bytes"] > 0
    pins = [line.removeprefix("- `").removesuffix("`") for line in meta["requirements"].split("\n")]
    assert len(pins) == meta["pinned_requirements"] > 20
    assert all("==" in pin for pin in pins) and "bentoml==1.4.40" in pins
    assert check.metadata["max_abs_diff"].value <= 1e-6
    assert check.metadata["requests"].value == serving_home.settings.infra_validation_requests
    assert "deployment" in materialized


def test_a_bento_is_rebuilt_only_when_its_code_changes(serving_home, built_bento):
    from evergreen.serving.bento import build_bento

    first = build_bento(serving_home.settings, serving_home.champion)  # built, or reused
    again = build_bento(serving_home.settings, serving_home.champion)

    assert again.rebuilt is False and again.tag == first.tag == built_bento.tag
    assert again.code_version == first.code_version
    assert (again.path / "env" / "docker" / "Dockerfile").exists()


def test_a_bento_serving_another_model_fails_and_blocks_the_deployment(
    serving_home, built_bento, instance
):
    if not instance.get_latest_materialization_event(AssetKey("bento")):  # run alone
        assert _run(serving_home.settings, instance, AssetSelection.assets(bento)).success
    # The bento keeps its name and labels but carries the other model's tag: it serves that.
    bento_yaml = built_bento.path / "bento.yaml"
    original = bento_yaml.read_text()
    info = yaml.safe_load(original)
    info["args"]["model_tag"] = serving_home.other
    for service in info["services"]:
        service["models"][0]["tag"] = serving_home.other
    bento_yaml.write_text(yaml.safe_dump(info, sort_keys=False))
    try:
        result = _run(
            serving_home.settings,
            instance,
            AssetSelection.checks(serves_like_offline) | AssetSelection.assets(deployment),
        )
    finally:
        bento_yaml.write_text(original)

    [check] = result.get_asset_check_evaluations()
    assert not check.passed
    reasons = check.metadata["reasons"].value
    assert f"serves {serving_home.other}, not {serving_home.champion}" in reasons
    assert "served scores differ from the offline scores" in reasons
    assert "deployment" not in _materialized(result)
    latest = instance.get_latest_materialization_event(AssetKey("deployment"))
    assert latest is None or latest.run_id != result.run_id
