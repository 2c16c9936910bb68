"""What the loop's sensors share: data days from the instance, a cursor of days already
judged, and the one way a finding becomes a retrain request (through the retrain policy).

The cut-off of a requested retrain is the newest ``raw_labels`` partition: the freshest
labels there are. It is computed from the data, never from the wall clock (the simulated days
are in 2018).
"""

from __future__ import annotations

import datetime as dt
import json

from dagster import AssetKey, DagsterInstance, RunRequest, SensorEvaluationContext

from assets.jobs import RETRAIN_JOB
from evergreen.loop.retrain_policy import Decision, RetrainGovernor, Trigger
from evergreen.settings import EvergreenSettings

LABELS = AssetKey("raw_labels")
LIVE_PREDICTIONS = AssetKey("live_predictions")


def materialized_days(instance: DagsterInstance, key: AssetKey) -> list[dt.date]:
    """The asset's materialized daily partitions, oldest first."""
    return sorted(dt.date.fromisoformat(p) for p in instance.get_materialized_partitions(key))


def newest_label_day(instance: DagsterInstance) -> dt.date | None:
    """The newest loaded labels partition: the cut-off a retrain trains up to."""
    days = materialized_days(instance, LABELS)
    return days[-1] if days else None


class DayCursor:
    """The data days a sensor has judged, kept as its cursor (a JSON list)."""

    def __init__(self, cursor: str | None):
        self.days: set[str] = set(json.loads(cursor)) if cursor else set()

    def new(self, days: list[dt.date], limit: int) -> list[dt.date]:
        """Days not judged yet, oldest first, at most ``limit`` (a long backlog is worked off
        over several ticks, so a tick stays short)."""
        return [d for d in days if d.isoformat() not in self.days][:limit]

    def add(self, day: dt.date) -> None:
        self.days.add(day.isoformat())

    def dump(self) -> str:
        return json.dumps(sorted(self.days))


def request_retrain(
    context: SensorEvaluationContext,
    settings: EvergreenSettings,
    trigger: Trigger,
    cutoff: dt.date,
    finding_reason: str,
) -> tuple[RunRequest | None, Decision]:
    """Put the trigger to the retrain policy (which records it); a run request for the
    ``retrain`` job on ``cutoff`` when accepted. Suppressions are logged with their reason."""
    decision = RetrainGovernor(settings).consider(trigger)
    day = trigger.data_time.date().isoformat()
    said = f"{trigger.kind} on {day} ({finding_reason}): {decision.reason}"
    if not decision.accepted:
        if decision.outcome == "suppressed":
            context.log.warning(f"retrain suppressed: {said}")
        else:
            context.log.info(said)
        return None, decision
    context.log.info(f"retrain of cut-off {cutoff} requested: {said}")
    request = RunRequest(
        run_key=f"retrain:{trigger.kind}:{day}:{cutoff.isoformat()}",
        job_name=RETRAIN_JOB,
        partition_key=cutoff.isoformat(),
        tags={
            "evergreen/trigger": trigger.kind,
            "evergreen/trigger_kind": trigger.kind,
            "evergreen/data_day": day,
            "evergreen/reason": finding_reason[:1000],
            "evergreen/severity": "" if trigger.severity is None else f"{trigger.severity:.4f}",
        },
    )
    return request, decision
