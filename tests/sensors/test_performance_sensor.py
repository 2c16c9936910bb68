"""The performance sensor on a real instance: live AP on matured labels against the AP the
champion was promoted on; a new fraud pattern (labels the model cannot rank) asks for a
retrain, once."""

from dagster import AssetMaterialization

from evergreen.loop.monitors import live_performance
from evergreen.loop.retrain_policy import RetrainGovernor, RetrainPolicy
from evergreen.warehouse import connect
from sensors.performance_sensor import performance_sensor
from tests.conftest import day
from tests.sensors.conftest import (
    LIVE_DAYS,
    labels_loaded,
    load_live_days,
    log_predictions,
    loop_definitions,
    register,
    rows_of,
    tick,
)


def land_new_fraud_pattern(settings, instance, landed_on) -> None:
    """Labels of the live days delivered again on ``landed_on``: the frauds the model knew are
    gone and about 1 % of other transactions, unrelated to the model's inputs, are fraud."""
    with connect(settings.warehouse_path) as conn:
        conn.execute(
            "INSERT INTO raw_labels SELECT transaction_id, "
            "(label = 0 AND hash(transaction_id) % 100 = 0)::TINYINT, $day, 'relabel.parquet', "
            "now()::TIMESTAMP FROM raw_labels WHERE transaction_id IN "
            "(SELECT transaction_id FROM live_predictions)",
            {"day": landed_on},
        )
    instance.report_runless_asset_event(
        AssetMaterialization(asset_key="raw_labels", partition=landed_on.isoformat())
    )


def test_decay_on_matured_labels_asks_for_a_retrain_once(
    loop_home, instance, training_frame, quick_models
):
    settings = loop_home
    tag = register(settings, quick_models[0], status="champion")
    log_predictions(settings, rows_of(training_frame, LIVE_DAYS), tag)
    load_live_days(settings, instance, LIVE_DAYS)
    labels_loaded(instance)
    defs = loop_definitions(settings)

    healthy = tick(performance_sensor, settings, instance, definitions=defs)

    assert healthy.run_requests == []
    assert RetrainGovernor(settings).history() == []
    finding = live_performance(settings, day(23))
    assert finding.model_tag == tag and finding.severity is not None
    assert finding.severity < RetrainPolicy().performance_enter, finding.reason
    assert finding.live[tag]["positives"] >= settings.monitor_min_frauds
    assert {"region=north_east", "channel=pos"} <= set(finding.segments)

    land_new_fraud_pattern(settings, instance, day(24))
    decayed = tick(performance_sensor, settings, instance, healthy.cursor, defs)

    [request] = decayed.run_requests
    assert request.job_name == "retrain" and request.partition_key == day(24).isoformat()
    assert request.tags["evergreen/trigger"] == "performance"
    # Accepted now, and follow-ups for when more labels of the new pattern have matured.
    record, *follow_ups = RetrainGovernor(settings).history()
    assert [f["outcome"] for f in follow_ups] == ["scheduled", "scheduled"]
    assert all("have matured by" in f["reason"] for f in follow_ups)
    # Dated from the decay's first day in the window, not the window's last day.
    judged = live_performance(settings, day(24))
    start = judged.decay_start(RetrainPolicy().performance_enter)
    assert follow_ups[0]["evidence"]["drift_first_day"] == start.isoformat()
    assert record["outcome"] == "accepted" and record["severity"] >= 0.5
    evidence = record["evidence"]
    assert evidence["live"][tag]["average_precision"] < evidence["reference_ap"] / 2
    assert evidence["reference_source"] == "validation days (ledger)"
    assert set(evidence["segments"]) >= {"card_type=debit", "region=south_west"}

    instance.report_runless_asset_event(
        AssetMaterialization(asset_key="raw_labels", partition=day(25).isoformat())
    )
    still = tick(performance_sensor, settings, instance, decayed.cursor, defs)
    assert still.run_requests == []
    assert "hysteresis" in still.skip_message
    assert [h["outcome"] for h in RetrainGovernor(settings).history()] == [
        "accepted",
        "scheduled",
        "scheduled",
        "suppressed",
    ]
