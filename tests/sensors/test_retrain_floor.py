"""The retrain floor on data time: a champion cut off a week or more before the newest labels
is retrained on the newest cut-off, through the retrain policy, once per period."""

from dagster import AssetMaterialization

from evergreen.loop.retrain_policy import RetrainGovernor
from sensors.retrain_floor_sensor import retrain_floor_sensor
from tests.conftest import day
from tests.sensors.conftest import CUTOFF, labels_loaded, loop_definitions, register, tick


def test_a_stale_champion_is_retrained_on_the_newest_cutoff_once(loop_home, instance, quick_models):
    settings = loop_home
    defs = loop_definitions(settings)
    labels_loaded(instance)  # through day 23
    register(settings, quick_models[0], cutoff=day(10), status="champion")

    due = tick(retrain_floor_sensor, settings, instance, definitions=defs)

    [request] = due.run_requests
    assert request.job_name == "retrain" and request.partition_key == CUTOFF.isoformat()
    assert request.tags["evergreen/trigger"] == "schedule"
    [record] = RetrainGovernor(settings).history()
    assert record["kind"] == "schedule" and record["outcome"] == "accepted"
    assert record["evidence"]["age_days"] == 13
    # The same labels day is not judged twice.
    again = tick(retrain_floor_sensor, settings, instance, due.cursor, defs)
    assert again.run_requests == [] and "No new labels day" in again.skip_message

    # A day later the champion is still old, but a retrain was asked for within the period.
    instance.report_runless_asset_event(
        AssetMaterialization(asset_key="raw_labels", partition=day(24).isoformat())
    )
    later = tick(retrain_floor_sensor, settings, instance, due.cursor, defs)
    assert later.run_requests == [] and "a retrain was requested on" in later.skip_message
    assert len(RetrainGovernor(settings).history()) == 1


def test_a_fresh_champion_is_left_alone(loop_home, instance, quick_models):
    settings = loop_home
    labels_loaded(instance)
    register(settings, quick_models[0], status="champion")  # cut off on day 23

    result = tick(retrain_floor_sensor, settings, instance)

    assert result.run_requests == [] and "0 day(s) before the newest labels" in result.skip_message
    assert RetrainGovernor(settings).history() == []
