"""Performance sensor: each newly loaded labels day matures a window of logged predictions; the
champion's live average precision there, against the AP it was promoted on, is its decay;
enough decay asks the retrain policy for a retrain, with the evidence (per version, per
segment).

Cursor: the ``raw_labels`` days already judged (each once, oldest first). Cheap: SQL and
scikit-learn metrics on the window's rows; no Feast, no model loaded.
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
    LABELS,
    DayCursor,
    materialized_days,
    request_retrain,
)

DAYS_PER_TICK = 30


@sensor(
    name="performance_sensor",
    description="When labels land, judges the champion's live AP/AUC on the matured "
    "predictions of the window (per model version and segment); decay -> retrain request "
    "through the retrain policy.",
    jobs=[retrain_job],
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
)
def performance_sensor(context: SensorEvaluationContext, evergreen: EvergreenResource):
    """Judge the label days not judged yet; request a retrain when the champion decayed."""
    from evergreen.loop.monitors import day_start, live_performance, write_finding
    from evergreen.loop.retrain_policy import RetrainPolicy, Trigger

    settings = evergreen.settings()
    cursor = DayCursor(context.cursor)
    label_days = materialized_days(context.instance, LABELS)
    cutoff = label_days[-1] if label_days else None
    requests, notes = [], []
    for day in cursor.new(label_days, DAYS_PER_TICK):
        finding = live_performance(settings, day)
        cursor.add(day)
        if finding.severity is None:
            notes.append(f"{day}: {finding.reason}")
            continue
        path = write_finding(settings, "performance", day, finding)
        context.log.info(f"performance through {day}: {finding.reason} ({path})")
        # Follow-ups are dated from the decay's first day (its labels are what a retrain
        # learns the drift from), estimated from the window's days at the enter level.
        trigger = Trigger(
            "performance",
            day_start(day),
            finding.severity,
            finding.evidence(),
            drift_first_day=finding.decay_start(RetrainPolicy().performance_enter),
        )
        request, decision = request_retrain(context, settings, trigger, cutoff, finding.reason)
        if request is not None:
            requests.append(request)
        else:
            notes.append(f"{day}: {finding.reason}; {decision.reason}")
    skip = None
    if not requests:
        skip = SkipReason("; ".join(notes)[-2000:] if notes else "No new labels day.")
    return SensorResult(run_requests=requests, skip_reason=skip, cursor=cursor.dump())
