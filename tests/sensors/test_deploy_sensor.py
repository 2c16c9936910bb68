"""The deploy sensor on a real instance: the ledger's champion is deployed when it is not what
serves, once per reign; what serves is read from the rollout state, else the deployment."""

from dagster import AssetMaterialization, Definitions

from evergreen.loop.promotion_review import current_crowning
from evergreen.models.registry import ModelRegistry
from evergreen.rollout.revisions import RevisionSpec
from evergreen.rollout.state import READY, RevisionState, mutate_state
from sensors.deploy_sensor import deploy_sensor
from tests.sensors.conftest import crown, loop_definitions, register, tick


def test_the_champion_is_deployed_when_it_does_not_serve(loop_home, instance, quick_models):
    settings = loop_home
    Definitions.validate_loadable(loop_definitions(settings))  # jobs resolve, sensors target them
    assert "No champion" in tick(deploy_sensor, settings, instance).skip_message
    first = register(settings, quick_models[0], status="champion")

    [request] = tick(deploy_sensor, settings, instance).run_requests

    assert request.job_name == "deploy" and request.tags["evergreen/model_tag"] == first
    assert request.run_key == current_crowning(ModelRegistry(settings)).deploy_run_key
    instance.report_runless_asset_event(
        AssetMaterialization(asset_key="deployment", metadata={"model_version": first})
    )
    served = tick(deploy_sensor, settings, instance)
    assert served.run_requests == [] and "serves" in served.skip_message

    second = register(settings, quick_models[1])
    crown(settings, second)
    [request] = tick(deploy_sensor, settings, instance).run_requests
    assert request.tags["evergreen/model_tag"] == second and request.run_key.startswith(
        f"deploy:{second}:"
    )

    # The rollout's state is the truth about what serves once a revision is stable.
    spec = RevisionSpec(serve_target=second, model_version=second, source=second, model_tag=second)
    with mutate_state(settings) as state:
        state.revisions["r0001"] = RevisionState("r0001", spec, "process", "now", 100, "", READY)
        state.stable = "r0001"
    served = tick(deploy_sensor, settings, instance)
    assert served.run_requests == [] and "stable revision r0001" in served.skip_message
