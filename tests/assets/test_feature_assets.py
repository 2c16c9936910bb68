"""The feature-layer assets in real Dagster runs on a real instance and a real Feast repo."""

import pyarrow.parquet as pq
import pytest
from dagster import instance_for_test, materialize

from assets.feast_features import (
    feature_definitions,
    online_features,
    training_set,
    transaction_state,
)
from assets.features import customer_spending_features, terminal_risk_features
from evergreen.features.repo import definitions_version
from evergreen.features.training_set import TrainingWindow, labelled_transactions
from evergreen.ingest.partition import ingest_partition
from evergreen.resources import EvergreenResource
from evergreen.warehouse import connect
from tests.conftest import day, make_settings
from tests.features.conftest import compute_features


@pytest.fixture(scope="module")
def home(tmp_path_factory, clean_zone):
    """The clean zone ingested; feature partitions of days 0..8 and 11 written directly."""
    import shutil

    settings = make_settings(tmp_path_factory.mktemp("assets") / "home")
    shutil.copytree(clean_zone, settings.landing_dir, dirs_exist_ok=True)
    for i in range(12):
        ingest_partition(settings, "transactions", day(i))
        ingest_partition(settings, "labels", day(i))
    compute_features(settings, [*range(9), 11])
    return settings


@pytest.fixture(scope="module")
def dagster_instance():
    with instance_for_test() as inst:
        yield inst


def _run(assets, home, instance, i=None, **kw):
    result = materialize(
        assets,
        partition_key=None if i is None else day(i).isoformat(),
        instance=instance,
        resources={"evergreen": EvergreenResource(home=str(home.home))},
        **kw,
    )
    return result


def _metadata(result, key):
    events = [
        e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key
    ]
    materialization = events[-1].step_materialization_data.materialization
    return {k: v.value for k, v in materialization.metadata.items()}


def test_feature_tables_write_their_partition_with_metadata(home, dagster_instance):
    first = _run([customer_spending_features, terminal_risk_features], home, dagster_instance, 9)
    again = _run([customer_spending_features, terminal_risk_features], home, dagster_instance, 9)

    assert first.success and again.success
    for key in ("customer_spending_features", "terminal_risk_features"):
        meta = _metadata(first, key)
        assert meta["dagster/row_count"] == pq.read_metadata(meta["path"]).num_rows > 0
        assert "| feature | mean |" in meta["summary"]
        assert meta["data_version"] == _metadata(again, key)["data_version"]
        assert meta["created_timestamp"] < _metadata(again, key)["created_timestamp"]


def test_feature_definitions_apply_only_when_changed(home, dagster_instance):
    first = _run([feature_definitions], home, dagster_instance)
    second = _run([feature_definitions], home, dagster_instance)

    assert _metadata(first, "feature_definitions")["applied"] is True
    assert _metadata(second, "feature_definitions")["applied"] is False
    assert _metadata(second, "feature_definitions")["definitions_version"] == definitions_version()
    forced = _run(
        [feature_definitions],
        home,
        dagster_instance,
        run_config={"ops": {"feature_definitions": {"config": {"force": True}}}},
    )
    assert _metadata(forced, "feature_definitions")["applied"] is True


def test_online_features_loads_the_newest_day_only(home, dagster_instance):
    _run([feature_definitions], home, dagster_instance)
    _run([customer_spending_features, terminal_risk_features], home, dagster_instance, 10)

    newest = _run([online_features], home, dagster_instance, 10)
    older = _run([online_features], home, dagster_instance, 9)

    meta = _metadata(newest, "online_features")
    assert meta["skipped"] is False and meta["entities_per_s"] > 0
    assert meta["dagster/row_count"] == meta["rows_customer_spending"] + meta["rows_terminal_risk"]
    assert _metadata(older, "online_features")["skipped"] is True


def test_training_set_holds_labels_known_at_the_cutoff(home, dagster_instance):
    _run([feature_definitions], home, dagster_instance)
    first = _run([training_set], home, dagster_instance, 11)
    again = _run([training_set], home, dagster_instance, 11)

    meta = _metadata(first, "training_set")
    settings = EvergreenResource(home=str(home.home)).settings()
    window = TrainingWindow.ending_at(
        day(11), settings.training_window_days, settings.label_delay_days
    )
    with connect(home.warehouse_path, read_only=True) as conn:
        expected = labelled_transactions(conn, window)
    assert meta["dagster/row_count"] == len(expected) == pq.read_metadata(meta["path"]).num_rows
    assert meta["label_share"] == pytest.approx(expected["label"].mean())
    assert meta["window"] == str(window)
    assert meta["feature_service"] == "fraud_detection"
    assert meta["feature_service_version"] == definitions_version()
    assert meta["fingerprint"] == _metadata(again, "training_set")["fingerprint"]


def test_transaction_state_adds_a_landed_day_once_even_after_serving(home, dagster_instance):
    """The day's landed transactions go into the request-time state; those already served
    (here: a third of the day, written as /predict does) are not added again, and a second
    run adds nothing."""
    import datetime as dt

    from evergreen.features.feast_client import feature_store
    from evergreen.features.sqlite_online_store import realtime_state_of

    _run([feature_definitions], home, dagster_instance)
    with connect(home.warehouse_path, read_only=True) as conn:
        landed = conn.sql(
            "SELECT transaction_id, customer_id, terminal_id, tx_datetime, amount "
            "FROM raw_transactions WHERE partition_date = $d ORDER BY transaction_id",
            params={"d": day(6)},
        ).fetchall()
    state = realtime_state_of(feature_store(home).config)
    served = [(tx, c, t, ts.replace(tzinfo=dt.UTC), a) for tx, c, t, ts, a in landed[::3]]
    state.record(served)

    first = _metadata(_run([transaction_state], home, dagster_instance, 6), "transaction_state")
    again = _metadata(_run([transaction_state], home, dagster_instance, 6), "transaction_state")

    ids = [row[0] for row in landed]
    assert set(state.held(ids).values()) == {1}
    state.close()
    assert first["dagster/row_count"] == len(landed) > 300
    assert (first["transactions_written"], first["transactions_already_held"]) == (
        len(landed) - len(served),
        len(served),
    )
    assert (again["transactions_written"], again["transactions_already_held"]) == (0, len(landed))
    assert first["data_time"] >= max(ts for *_, ts, _ in landed).replace(tzinfo=dt.UTC).timestamp()


def test_feast_assets_need_applied_definitions(tmp_path, dagster_instance):
    bare = make_settings(tmp_path / "bare")

    result = _run([online_features], bare, dagster_instance, 3, raise_on_error=False)

    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error.message
    assert "materialize feature_definitions first" in failure
