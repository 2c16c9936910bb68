"""Deploy sensor: when the ledger's champion is not what serves, request the ``deploy`` job
(its bento, infra-validated, then the rollout).

What serves: the rollout supervisor's stable revision (``evergreen.rollout.state``: its model
tag), else the newest ``deployment`` materialization's ``model_version``. One request per reign
of a champion (run key ``deploy:<tag>:<crowning event>``), so a model restored by a rollback
deploys again; no request while a deploy run is queued or running, nor when a run already
carries that key (another sensor, e.g. the promotion watch, asked first).
"""

from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from assets.jobs import DEPLOY_JOB, deploy_job
from evergreen.resources import EvergreenResource
from evergreen.settings import EvergreenSettings

DEPLOYMENT = AssetKey("deployment")
_UNFINISHED = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


def serving_model_tag(
    settings: EvergreenSettings, instance: DagsterInstance
) -> tuple[str | None, str]:
    """(the model tag that serves, where that was read), or (None, why nothing is known)."""
    from evergreen.rollout.state import read_state

    state = read_state(settings)
    stable = state.revisions.get(state.stable) if state.stable else None
    if stable is not None:
        tag = stable.spec.model_tag or stable.model_version
        return tag, f"stable revision {stable.name} of the rollout state"
    event = instance.get_latest_materialization_event(DEPLOYMENT)
    if event is not None and event.asset_materialization is not None:
        meta = event.asset_materialization.metadata
        value = meta.get("model_version") or meta.get("model_tag")
        if value is not None:
            return str(value.value), "the newest deployment materialization"
    return None, "nothing deployed yet"


@sensor(
    name="deploy_sensor",
    description="Requests the deploy job (bento + rollout) when the ledger's champion differs "
    "from the model that serves.",
    jobs=[deploy_job],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
)
def deploy_sensor(context: SensorEvaluationContext, evergreen: EvergreenResource):
    """Compare the champion with what serves; request one deploy per reign."""
    from evergreen.loop.promotion_review import current_crowning
    from evergreen.models.registry import ModelRegistry
    from evergreen.rollout.supervisor import Supervisor

    settings = evergreen.settings()
    revived = Supervisor(settings).keep_watchdog_alive()  # the keeper of the replicas
    if revived:
        context.log.warning(revived)
    crowning = current_crowning(ModelRegistry(settings))
    if crowning is None:
        return SkipReason("No champion in the ledger.")
    serving, source = serving_model_tag(settings, context.instance)
    if serving == crowning.tag:
        return SkipReason(f"The champion {crowning.tag} serves ({source}).")
    busy = context.instance.get_runs(RunsFilter(job_name=DEPLOY_JOB, statuses=_UNFINISHED))
    if busy:
        return SkipReason(f"Deploy run {busy[0].run_id[:8]} is {busy[0].status.value}: waiting.")
    key = crowning.deploy_run_key
    done = context.instance.get_runs(RunsFilter(tags={"dagster/run_key": key}), limit=1)
    if done:
        return SkipReason(
            f"{crowning.tag} does not serve ({serving or 'nothing'}: {source}) although run "
            f"{done[0].run_id[:8]} ({done[0].status.value}) deployed it: see that run; the "
            "deploy job can be launched by hand."
        )
    context.log.info(f"deploying {crowning.tag}: {serving or 'nothing'} serves ({source})")
    return RunRequest(
        run_key=key,
        job_name=DEPLOY_JOB,
        tags={
            "evergreen/trigger": "champion_changed",
            "evergreen/model_tag": crowning.tag,
            "evergreen/reason": f"champion {crowning.tag}; serving {serving or 'nothing'} "
            f"({source})",
        },
    )
