"""Drift sensor: each newly loaded day of the prediction log against the serving model's
training set; enough drift asks the retrain policy for a retrain, with the evidence.

Cursor: the ``live_predictions`` days already judged (each day once, oldest first, a few per
tick). Cheap: no Feast; Evidently only on sampled frames (``drift_sample_rows`` per side).
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
from sensors.retrain_requests import (
    LIVE_PREDICTIONS,
    DayCursor,
    materialized_days,
    newest_label_day,
    request_retrain,
)

DAYS_PER_TICK = 3  # a drift check takes seconds; a backlog is worked off over ticks


@sensor(
    name="drift_sensor",
    description="Judges each newly loaded day of live_predictions for drift from the serving "
    "model's training set (per feature and per segment, Evidently); drift -> retrain request "
    "through the retrain policy.",
    jobs=[retrain_job],
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
)
def drift_sensor(context: SensorEvaluationContext, evergreen: EvergreenResource):
    """Judge the live_predictions days not judged yet; request a retrain when drifted."""
    from evergreen.loop.monitors import day_start, finding_path, judged_drift
    from evergreen.loop.retrain_policy import Trigger

    settings = evergreen.settings()
    cursor = DayCursor(context.cursor)
    days = cursor.new(materialized_days(context.instance, LIVE_PREDICTIONS), DAYS_PER_TICK)
    cutoff = newest_label_day(context.instance)
    requests, notes = [], []
    for day in days:
        # Kept if model_monitoring already judged the day: Evidently runs once per day.
        finding = judged_drift(settings, day)
        path = finding_path(settings, "drift", day)
        context.log.info(f"drift of {day}: {finding.reason} ({path})")
        cursor.add(day)
        if finding.severity is None or cutoff is None:
            notes.append(f"{day}: {finding.reason if cutoff else 'no labels loaded yet'}")
            continue
        trigger = Trigger("drift", day_start(day), finding.severity, finding.evidence())
        request, decision = request_retrain(context, settings, trigger, cutoff, finding.reason)
        if request is not None:
            requests.append(request)
        else:
            notes.append(f"{day}: {finding.reason}; {decision.reason}")
    skip = None
    if not requests:
        skip = SkipReason("; ".join(notes) if notes else "No new live_predictions day.")
    return SensorResult(run_requests=requests, skip_reason=skip, cursor=cursor.dump())
