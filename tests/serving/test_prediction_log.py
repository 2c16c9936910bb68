"""Every prediction is logged by the serving process and loaded by ``live_predictions``."""

import json

import httpx
from dagster import materialize

from assets.serving import live_predictions
from evergreen.models.features import FEATURE_NAMES, NUMERIC_FEATURES
from evergreen.resources import EvergreenResource
from evergreen.serving.prediction_log import day_dir
from evergreen.warehouse import connect
from tests.conftest import day
from tests.serving.conftest import SERVED_DAY, served_transactions


def _load(settings, instance):
    result = materialize(
        [live_predictions],
        partition_key=day(SERVED_DAY).isoformat(),
        instance=instance,
        resources={"evergreen": EvergreenResource(home=str(settings.home))},
    )
    [event] = result.get_asset_materialization_events()
    metadata = event.step_materialization_data.materialization.metadata
    return {k: v.value for k, v in metadata.items()}


def test_each_prediction_is_logged_with_inputs_features_and_score(served, serving_home):
    settings = serving_home.settings
    batch = served_transactions(settings, 30)

    body = httpx.post(f"{served.url}/predict", json={"transactions": batch}, timeout=30).json()

    folder = day_dir(settings.predictions_dir, day(SERVED_DAY))
    lines = [json.loads(line) for f in folder.glob("*.jsonl") for line in f.open()]
    logged = {r["transaction_id"]: r for r in lines if r["request_id"] == body["request_id"]}
    assert len(logged) == 30
    for tx, prediction in zip(batch, body["predictions"], strict=True):
        record = logged[tx["transaction_id"]]
        assert record["fraud_probability"] == prediction["fraud_probability"]
        assert record["decision"] == prediction["decision"]
        assert record["model_version"] == serving_home.champion
        assert record["amount"] == tx["amount"] and record["channel"] == tx["channel"]
        inputs = {"amount", "region", "channel", "card_type"}
        assert set(record["features"]) == set(FEATURE_NAMES) - inputs
        assert set(record["features"]) < set(NUMERIC_FEATURES)


def test_live_predictions_loads_the_day_idempotently(served, serving_home, instance):
    settings = serving_home.settings
    httpx.post(
        f"{served.url}/predict",
        json={"transactions": served_transactions(settings, 10)},
        timeout=30,
    ).raise_for_status()
    folder = day_dir(settings.predictions_dir, day(SERVED_DAY))
    logged = sum(1 for f in folder.glob("*.jsonl") for _ in f.open())
    files = len(list(folder.glob("*.jsonl")))  # every replica that served the day has one
    torn = folder / "crashed-replica.jsonl"
    torn.write_text('{"request_id": "cut", "predicted_at": "20')
    try:
        first = _load(settings, instance)
        second = _load(settings, instance)
    finally:  # the served home is shared: later tests read its log line by line
        torn.unlink()

    assert first["dagster/row_count"] == second["dagster/row_count"] == logged
    assert first["files"] == files + 1 and first["lines_skipped"] == 0  # and the torn one
    assert serving_home.champion in first["model_versions"]
    assert 0.0 <= first["score_mean"] <= 1.0
    with connect(settings.warehouse_path, read_only=True) as conn:
        rows, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT (request_id, transaction_id)) FROM live_predictions "
            "WHERE partition_date = ?",
            [day(SERVED_DAY)],
        ).fetchone()
        feature = conn.execute(
            "SELECT features->>'$.customer_n_tx_30d' FROM live_predictions LIMIT 1"
        ).fetchone()[0]
    assert rows == distinct == logged
    assert feature is not None
