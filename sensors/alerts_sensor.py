"""The open alerts in the Dagster UI: a sensor whose every tick says which alerts fire now.

Alertmanager's notifications land in the ledger (``evergreen observe``); this sensor reads the
open ones each tick and says them in its skip reason (the sensor's tick history in the UI), page
before ticket, each with its owner and runbook line. It requests nothing: acting on an alert is
a person's call (``evergreen alerts`` lists the history).
"""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from evergreen.resources import EvergreenResource

MAX_SAID = 10  # alerts spelled out per tick; the rest are counted


@sensor(
    name="open_alerts",
    description="Lists the alerts firing now (from the ledger, as Alertmanager delivered "
    "them): severity, owner, summary and runbook. Requests no run.",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
)
def open_alerts_sensor(context: SensorEvaluationContext, evergreen: EvergreenResource):
    """Say the open alerts."""
    from evergreen.observe.alerts import open_alerts

    rows = open_alerts(evergreen.settings())
    if not rows:
        return SkipReason("No open alert (`evergreen alerts` lists the history).")
    said = [
        f"[{r.severity} -> {r.owner}] {r.alertname} since {r.starts_at[:19]}Z: {r.summary}. "
        f"Runbook: {r.runbook}"
        for r in rows[:MAX_SAID]
    ]
    more = f" (and {len(rows) - MAX_SAID} more)" if len(rows) > MAX_SAID else ""
    for line in said:
        context.log.warning(line)
    return SkipReason(f"{len(rows)} open alert(s){more}: " + " | ".join(said))
