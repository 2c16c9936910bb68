"""Promotion watch: once the labels of a new champion's first production days have matured,
confirm it or roll it back to the model it replaced (``evergreen.loop.promotion_review``);
after a rollback, request the ``deploy`` job so the restored model serves again.

Cursor: the newest labels day and the champion's reign last looked at, so a tick with nothing
new reads nothing but the instance and the ledger.
"""

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.jobs import DEPLOY_JOB, deploy_job
from evergreen.resources import EvergreenResource
from sensors.retrain_requests import newest_label_day


@sensor(
    name="promotion_watch",
    description="Confirms a new champion, or rolls it back to its predecessor (then deploys "
    "it), once the labels of its first production days have matured: paired bootstrap "
    "non-inferiority on the same transactions.",
    jobs=[deploy_job],
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
)
def promotion_watch(context: SensorEvaluationContext, evergreen: EvergreenResource):
    """Review the champion's reign when its production labels have matured."""
    from evergreen.loop.promotion_review import apply_review, current_crowning, review_champion
    from evergreen.models.registry import CorruptArtifactError, ModelRegistry, UnknownModelError

    settings = evergreen.settings()
    newest = newest_label_day(context.instance)
    crowning = current_crowning(ModelRegistry(settings))
    if newest is None or crowning is None:
        return SkipReason("No champion yet." if newest else "No labels loaded yet.")
    looked_at = f"{newest}|{crowning.tag}|{crowning.event_id}"
    if looked_at == context.cursor:
        return SkipReason(f"Nothing new for {crowning.tag} since labels of {newest}.")
    try:
        review = review_champion(settings, newest)
    except (CorruptArtifactError, UnknownModelError) as error:
        context.log.error(f"cannot review {crowning.tag}: {error}")
        return SensorResult(skip_reason=SkipReason(str(error)), cursor=looked_at)
    if review is None or review.outcome == "wait":
        why = review.reason if review else f"{crowning.tag} was already reviewed"
        return SensorResult(skip_reason=SkipReason(f"{crowning.tag}: {why}"), cursor=looked_at)
    try:
        changes = apply_review(settings, review)
    except ValueError as error:  # the champion changed while the review ran: look again
        return SkipReason(f"{error}: reviewing again next tick.")
    for change in changes:
        context.log.info(f"{change}: {review.reason}")
    if review.outcome != "roll_back":
        said = f"{crowning.tag}: {review.outcome}: {review.reason}"
        return SensorResult(skip_reason=SkipReason(said), cursor=looked_at)
    restored = current_crowning(ModelRegistry(settings))
    request = RunRequest(
        run_key=restored.deploy_run_key,
        job_name=DEPLOY_JOB,
        tags={
            "evergreen/trigger": "rollback",
            "evergreen/model_tag": restored.tag,
            "evergreen/reason": f"{crowning.tag} rolled back: {review.reason}"[:1000],
        },
    )
    return SensorResult(run_requests=[request], cursor=looked_at)
