"""Follow-up retrains: a drift or decay alarm on day D scheduled a retrain for when the labels
of the drift's first days have matured (``RetrainPolicy.follow_up_days`` after D + the label
delay). On each newer labels day, every follow-up due by then is put to the retrain policy
(kind ``follow_up``, with the schedule's id and reason): accepted -> a retrain of the newest
cut-off; held back by the cooldown or the budget -> asked again on the next labels day.

A separate sensor rather than part of the drift sensor: the drift signal's hysteresis
suppresses later drift triggers while the drift lasts, which is exactly when this one matters.
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
    name="follow_up_sensor",
    description="Retrains scheduled by a drift or decay alarm, once the labels of the drift's "
    "first days have matured; through the retrain policy (cooldown, budget).",
    jobs=[retrain_job],
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
)
def follow_up_sensor(context: SensorEvaluationContext, evergreen: EvergreenResource):
    """Put the follow-ups due by the newest labels day to the retrain policy."""
    from evergreen.loop.monitors import day_start
    from evergreen.loop.retrain_policy import RetrainGovernor, Trigger

    settings = evergreen.settings()
    newest = newest_label_day(context.instance)
    if newest is None or newest.isoformat() == context.cursor:
        return SkipReason("No new labels day.")
    governor = RetrainGovernor(settings)
    requests, notes = [], []
    for follow_up in governor.due_follow_ups(newest):
        said = (
            f"follow-up of the {follow_up.alarm} alarm on the drift from "
            f"{follow_up.drift_first_day}: its first labels matured by {follow_up.due}"
        )
        trigger = Trigger("follow_up", day_start(newest), None, follow_up.evidence())
        request, decision = request_retrain(context, settings, trigger, newest, said)
        if request is not None:
            requests.append(request)
            break  # one retrain per labels day: the rest are the same retrain
        notes.append(f"{said}; {decision.reason}")
    skip = None if requests else SkipReason("; ".join(notes) or f"No follow-up due by {newest}.")
    return SensorResult(run_requests=requests, skip_reason=skip, cursor=newest.isoformat())
