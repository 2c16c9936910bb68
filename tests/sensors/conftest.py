"""Loop fixtures: a home with a real warehouse (24 simulated days ingested), the training set of
day 23, registered models, and a prediction log written and loaded the way serving does.

The session-scoped pipeline and models come from the plugin ``tests/model_fixtures.py``.
"Live" days are the training set's held-out evaluation days (10..16): no model trained on them,
and their labels landed by day 23, so they are matured predictions with known labels.
"""

import copy
import datetime as dt
import shutil

import numpy as np
import pandas as pd
import pytest
from dagster import AssetMaterialization, Definitions, build_sensor_context, materialize

from assets.serving import live_predictions
from evergreen.loop.live_data import LOGGED_FEATURES
from evergreen.models.ledger import ModelStatus
from evergreen.models.registry import ModelRegistry
from evergreen.models.training import Provenance, train_candidate
from evergreen.resources import EvergreenResource
from evergreen.settings import EvergreenSettings
from tests.conftest import day, make_settings
from tests.model_fixtures import CUTOFF, FAST, ZONE_DAYS, asset_settings  # noqa: F401

LIVE_DAYS = [day(i) for i in range(10, 17)]


@pytest.fixture(scope="session")
def noise_model(split):  # noqa: F811
    """A model trained on shuffled labels: as bad as a model gets (AP ~ the fraud share)."""
    rng = np.random.default_rng(0)

    def shuffled(frame):
        return frame.assign(label=rng.permutation(frame["label"].to_numpy()))

    return train_candidate(shuffled(split.train), shuffled(split.validation), seed=0, params=FAST)


@pytest.fixture
def loop_home(tmp_path, pipeline_home, training_frame):  # noqa: F811
    """A fresh home: the pipeline's warehouse, the training set of the cut-off day, no models,
    no predictions; its settings as the assets and sensors see them. Whatever a test left
    serving is stopped after it: the deploy sensor starts the watchdog of a stable revision,
    which otherwise outlived the suite."""
    from evergreen.rollout.state import state_path
    from evergreen.rollout.supervisor import Supervisor

    settings = asset_settings(make_settings(tmp_path / "home"))
    shutil.copy(pipeline_home.warehouse_path, settings.warehouse_path)
    path = settings.training_set_path(CUTOFF)
    path.parent.mkdir(parents=True, exist_ok=True)
    training_frame.to_parquet(path)
    yield settings
    if state_path(settings).exists():
        Supervisor(settings).stop_all("the test is over")


def resources(settings: EvergreenSettings) -> dict:
    return {"evergreen": EvergreenResource(home=str(settings.home))}


def loop_definitions(settings: EvergreenSettings) -> Definitions:
    """The code location's own definitions (``definitions.py``) bound to this test's home:
    partitioned requests resolve against exactly what the daemon would load."""
    from definitions import defs

    return Definitions(
        assets=list(defs.assets),
        asset_checks=list(defs.asset_checks or []),
        jobs=list(defs.jobs),
        sensors=list(defs.sensors),
        resources=resources(settings),
    )


def tick(sensor, settings, instance, cursor=None, definitions=None):
    """One evaluation of ``sensor`` on the real instance, as the daemon runs it."""
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources=resources(settings),
        definitions=definitions,
        sensor_name=sensor.name,
    )
    return sensor.evaluate_tick(context)


def register(settings, trained, cutoff: dt.date = CUTOFF, status=None) -> str:
    """Register a trained model with ``cutoff`` as its provenance; optionally set its status."""
    model = copy.copy(trained)  # the session's model keeps its own provenance
    model.provenance = Provenance(cutoff=cutoff.isoformat(), data_fingerprint="test-data")
    registry = ModelRegistry(settings)
    tag = registry.register(model, actor="test", reason="fixture").tag
    if status is not None:
        registry.set_status(tag, status, actor="test", reason="promoted by the gate at cut-off")
    return tag


def crown(settings, tag: str) -> None:
    ModelRegistry(settings).set_status(
        tag, ModelStatus.CHAMPION, actor="test", reason="promoted by the gate at its cut-off"
    )


def rows_of(frame: pd.DataFrame, days: list[dt.date]) -> pd.DataFrame:
    tx_days = frame["tx_datetime"].dt.tz_convert("UTC").dt.date
    return frame[tx_days.isin(days)]


def log_predictions(settings, frame: pd.DataFrame, tag: str) -> None:
    """Score ``frame`` with the registered model and append the records to the prediction log
    exactly as a serving replica writes them."""
    from evergreen.serving.prediction_log import PredictionLog, prediction_records
    from evergreen.serving.schemas import Prediction, Transaction

    model = ModelRegistry(settings).load(tag)
    scores = model.predict_proba(frame)
    fields = ["transaction_id", "customer_id", "terminal_id", "amount", "tx_datetime"]
    fields += ["region", "channel", "card_type"]
    transactions = [Transaction(**row) for row in frame[fields].to_dict("records")]
    predictions = [
        Prediction(
            transaction_id=tx.transaction_id,
            fraud_probability=float(p),
            decision=bool(p >= model.threshold),
            threshold=model.threshold,
            model_version=tag,
            request_id=f"test-{tx.transaction_id}",
        )
        for tx, p in zip(transactions, scores, strict=True)
    ]
    features = {
        name: [None if pd.isna(v) else float(v) for v in frame[name]] for name in LOGGED_FEATURES
    }
    log = PredictionLog(settings.predictions_dir, replica="test-replica")
    log.append(prediction_records(transactions, features, predictions, dt.datetime.now(dt.UTC)))
    log.close()


def load_live_days(settings, instance, days: list[dt.date]) -> None:
    """Materialize ``live_predictions`` for each day (the real asset, on the real instance)."""
    for d in days:
        result = materialize(
            [live_predictions],
            partition_key=d.isoformat(),
            instance=instance,
            resources=resources(settings),
        )
        assert result.success


def labels_loaded(instance, through: int = ZONE_DAYS - 1) -> None:
    """The instance learns that the raw_labels partitions of days 0..through are loaded (the
    warehouse copy holds them)."""
    for i in range(through + 1):
        instance.report_runless_asset_event(
            AssetMaterialization(asset_key="raw_labels", partition=day(i).isoformat())
        )


def stationary_day(frame: pd.DataFrame, d: dt.date, rows: int, seed: int) -> pd.DataFrame:
    """A day of traffic drawn from the training distribution itself: ``rows`` transactions of
    the training set (any of its days), moved to day ``d`` at their own time of day. The
    simulated history is too short for its 7- and 30-day counts to have settled, so real
    consecutive days differ from the training window by warm-up alone; this is stationary."""
    part = frame.sample(n=rows, random_state=seed).copy()
    offset = pd.Timestamp(d, tz="UTC") - part["tx_datetime"].dt.floor("D")
    part["tx_datetime"] = part["tx_datetime"] + offset
    return part
