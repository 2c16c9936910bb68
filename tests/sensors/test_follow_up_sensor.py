"""Follow-ups on data time: a drift alarm schedules a retrain for when the drift's first days'
labels matured; the sensor asks for it then, once, through the retrain policy."""

import datetime as dt

from dagster import AssetMaterialization

from evergreen.loop.monitors import day_start
from evergreen.loop.retrain_policy import RetrainGovernor, Trigger
from sensors.follow_up_sensor import follow_up_sensor
from tests.conftest import day
from tests.sensors.conftest import labels_loaded, loop_definitions, tick


def _labels_through(instance, d: dt.date) -> None:
    instance.report_runless_asset_event(
        AssetMaterialization(asset_key="raw_labels", partition=d.isoformat())
    )


def test_a_follow_up_retrains_once_the_drifts_labels_matured(loop_home, instance):
    settings, defs = loop_home, loop_definitions(loop_home)
    labels_loaded(instance, through=15)
    drift_day = day(15)
    governor = RetrainGovernor(settings)
    alarm = governor.consider(Trigger("drift", day_start(drift_day), severity=0.6))
    assert alarm.accepted and alarm.follow_up is not None
    due = alarm.follow_up.due
    assert due == drift_day + dt.timedelta(days=settings.label_delay_days + 1)

    early = tick(follow_up_sensor, settings, instance, definitions=defs)
    assert early.run_requests == [] and f"No follow-up due by {day(15)}" in early.skip_message

    _labels_through(instance, due)
    fired = tick(follow_up_sensor, settings, instance, early.cursor, defs)
    [request] = fired.run_requests
    assert request.job_name == "retrain" and request.partition_key == due.isoformat()
    assert request.tags["evergreen/trigger"] == "follow_up"
    assert "labels matured by" in request.tags["evergreen/reason"]
    follow = [h for h in governor.history() if h["kind"] == "follow_up"]
    assert [h["outcome"] for h in follow] == ["scheduled", "scheduled", "accepted"]
    assert follow[-1]["evidence"]["schedule_id"] == alarm.follow_up.schedule_id

    # The next labels day: the first follow-up is done; the second is not due yet.
    _labels_through(instance, due + dt.timedelta(days=1))
    later = tick(follow_up_sensor, settings, instance, fired.cursor, defs)
    assert later.run_requests == []
