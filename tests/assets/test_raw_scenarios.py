"""Each bad-data scenario of the simulator gives its documented outcome in a real Dagster run."""

import pytest
from dagster import AssetCheckSeverity, materialize

from assets.raw_data import raw_labels, raw_transactions
from evergreen.ingest.partition import ingest_partition
from evergreen.ingest.quarantine import list_quarantined
from evergreen.resources import EvergreenResource
from tests.conftest import day, make_settings, simulate_small

BAD_DAY = 10  # late enough for the volume band to have a week of history

# kind -> (feed whose partition is affected, check that fails, severity, files quarantined)
OUTCOMES = {
    "renamed_column": ("transactions", "schema_contract", AssetCheckSeverity.ERROR, 1),
    "missing_column": ("transactions", "schema_contract", AssetCheckSeverity.ERROR, 1),
    "wrong_type": ("transactions", "schema_contract", AssetCheckSeverity.ERROR, 1),
    "null_keys": ("transactions", "non_null_keys", AssetCheckSeverity.ERROR, 1),
    "duplicate_rows": ("transactions", "unique_transaction_ids", AssetCheckSeverity.ERROR, 1),
    "negative_amounts": ("transactions", "value_ranges", AssetCheckSeverity.ERROR, 1),
    "misdated": ("transactions", "value_ranges", AssetCheckSeverity.ERROR, 1),
    "empty_day": ("transactions", "volume_within_band", AssetCheckSeverity.ERROR, 0),
    "late_file": ("transactions", "volume_within_band", AssetCheckSeverity.ERROR, 0),
    "repeated_file": ("transactions", "unique_transaction_ids", AssetCheckSeverity.WARN, 1),
    "unknown_label_refs": ("labels", "known_transactions", AssetCheckSeverity.ERROR, 1),
}


def _run(asset, settings, instance, i):
    return materialize(
        [asset],
        partition_key=day(i).isoformat(),
        instance=instance,
        resources={"evergreen": EvergreenResource(home=str(settings.home))},
        raise_on_error=False,
    )


@pytest.mark.parametrize("kind", sorted(OUTCOMES))
def test_bad_data_scenario_outcome(kind, tmp_path, instance):
    feed, check, severity, n_quarantined = OUTCOMES[kind]
    settings = make_settings(tmp_path / "home")
    # late_file withholds part-1 until the next day is simulated: stop at the bad day.
    simulate_small(settings.landing_dir, days=BAD_DAY + 1, bad_data=[(kind, day(BAD_DAY))])
    for i in range(BAD_DAY):
        ingest_partition(settings, "transactions", day(i))
        ingest_partition(settings, "labels", day(i))
    if feed == "labels":
        ingest_partition(settings, "transactions", day(BAD_DAY))
    asset = raw_transactions if feed == "transactions" else raw_labels

    result = _run(asset, settings, instance, BAD_DAY)

    failed = {e.check_name: e for e in result.get_asset_check_evaluations() if not e.passed}
    assert set(failed) == {check}, {k: e.description for k, e in failed.items()}
    assert failed[check].severity == severity
    assert failed[check].description  # says what is wrong in words
    # A blocking (ERROR) failure fails the run; a warning does not.
    assert result.success == (severity == AssetCheckSeverity.WARN)
    held = list_quarantined(settings.quarantine_dir, feed, day(BAD_DAY))
    assert len(held) == n_quarantined
    for q in held:
        assert q.message, "every quarantined file carries its reason"
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    reconciled = evaluations["rows_reconciled"]
    assert reconciled.passed, reconciled.description


def test_late_file_passes_once_it_lands(tmp_path, instance):
    settings = make_settings(tmp_path / "home")
    simulate_small(settings.landing_dir, days=BAD_DAY + 1, bad_data=[("late_file", day(BAD_DAY))])
    for i in range(BAD_DAY):
        ingest_partition(settings, "transactions", day(i))
    first = _run(raw_transactions, settings, instance, BAD_DAY)
    assert not first.success

    from evergreen.simulator import append_day

    append_day(settings.landing_dir)  # the next day arrives, and with it the withheld part-1
    second = _run(raw_transactions, settings, instance, BAD_DAY)

    assert second.success
    rows = [
        m.step_materialization_data.materialization.metadata["dagster/row_count"].value
        for m in (
            first.get_asset_materialization_events() + second.get_asset_materialization_events()
        )
    ]
    assert rows[1] > rows[0] * 1.5  # the late half is now in, exactly once
