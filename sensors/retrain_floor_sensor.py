"""The retrain floor: a champion whose cut-off lags the newest labels by ``retrain_floor_days``
(7: weekly) is retrained on the newest cut-off, whatever drift and performance say.

A sensor on data time rather than a cron schedule: the data's days are not the wall clock's
(the demo replays 2018 in minutes; a backfill replays a month in an hour), so a weekly cron
tick would retrain on the wrong cut-off, or not at all during a fast replay. The floor is
judged once per new labels day; its trigger (kind "schedule") goes through the retrain policy
like every other, so it never adds a retrain within the cooldown or over the daily budget.
"""

from dagster import (
    DefaultSensorStatus,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.jobs import retrain_job
from evergreen.resources import EvergreenResource
from sensors.retrain_requests import newest_label_day, request_retrain


@sensor(
    name="retrain_floor_sensor",
    description="Weekly retrain floor on data time: when the champion's cut-off is "
    "retrain_floor_days behind the newest labels, request a retrain (through the retrain "
    "policy) on the newest cut-off.",
    jobs=[retrain_job],
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
)
def retrain_floor_sensor(context: SensorEvaluationContext, evergreen: EvergreenResource):
    """Judge the champion's age each time a newer labels day is loaded."""
    from evergreen.loop.monitors import day_start, stale_model
    from evergreen.loop.retrain_policy import Trigger

    settings = evergreen.settings()
    newest = newest_label_day(context.instance)
    if newest is None or newest.isoformat() == context.cursor:
        return SkipReason("No new labels day.")
    finding = stale_model(settings, newest)
    if not finding.stale:
        return SensorResult(skip_reason=SkipReason(finding.reason), cursor=newest.isoformat())
    trigger = Trigger("schedule", day_start(newest), None, finding.evidence())
    request, decision = request_retrain(context, settings, trigger, newest, finding.reason)
    skip = None if request else SkipReason(f"{finding.reason}; {decision.reason}")
    return SensorResult(
        run_requests=[request] if request else [], skip_reason=skip, cursor=newest.isoformat()
    )
