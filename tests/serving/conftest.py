"""Serving fixtures: a home with ingested data, features online, a trained champion.

Everything here is real and slow to build (ingest, Feast apply and materialize, a CatBoost fit,
a bento build), so it is built once per session and shared.
"""

import datetime as dt
import shutil
from dataclasses import dataclass

import pandas as pd
import pytest

from evergreen.ingest.partition import ingest_partition
from evergreen.settings import EvergreenSettings
from tests.conftest import day, make_settings
from tests.features.conftest import compute_features

ONLINE_DAY = 10  # features of day 10 are online: they serve day 11's transactions
SERVED_DAY = 11
FAST_TRAINING = {"iterations": 60, "od_wait": 20}


@dataclass
class ServingHome:
    settings: EvergreenSettings
    champion: str  # model tag
    other: str  # a second registered model, never promoted
    evaluation: pd.DataFrame  # the held-out rows of the training set


def _training_frame(settings: EvergreenSettings, store) -> pd.DataFrame:
    from evergreen.features.training_set import TrainingWindow, window_training_set

    window = TrainingWindow.ending_at(
        day(SERVED_DAY), settings.training_window_days, settings.label_delay_days
    )
    return window_training_set(settings, window, store=store)[1].to_pandas()


def _register(settings, split, service, seed: int, params: dict) -> str:
    from evergreen.models.registry import ModelRegistry
    from evergreen.models.training import Provenance, train_candidate

    trained = train_candidate(split.train, split.validation, seed=seed, params=params)
    trained.provenance = Provenance(
        feature_service=service.name, feature_service_version=service.tags["version"]
    )
    return ModelRegistry(settings).register(trained, "tests", "serving fixture").tag


def reconcile_days(settings: EvergreenSettings, store, days) -> None:
    """The landed transactions of these day indexes into the request-time state."""
    from evergreen.features.realtime_state import reconcile_day
    from evergreen.features.sqlite_online_store import realtime_state_of
    from evergreen.warehouse import connect

    state = realtime_state_of(store.config)
    with connect(settings.warehouse_path, read_only=True) as conn:
        for i in days:
            reconcile_day(state, conn, day(i))
    state.close()


@pytest.fixture(scope="session")
def serving_home(tmp_path_factory, clean_zone) -> ServingHome:
    """The clean 12-day zone ingested, features computed, day 10 online, a champion model and
    a second, different model registered."""
    from evergreen.features.feast_client import (
        apply_definitions,
        feature_store,
        fraud_feature_service,
        materialize_day,
    )
    from evergreen.models.registry import ModelRegistry
    from evergreen.models.training import split_by_time

    base = make_settings(tmp_path_factory.mktemp("serving") / "home")
    settings = base.model_copy(update={"evaluation_days": 2, "validation_days": 2})
    shutil.copytree(clean_zone, settings.landing_dir, dirs_exist_ok=True)
    for i in range(SERVED_DAY + 1):
        ingest_partition(settings, "transactions", day(i))
        ingest_partition(settings, "labels", day(i))
    compute_features(settings, range(SERVED_DAY + 1))
    apply_definitions(settings)
    store = feature_store(settings)
    materialize_day(store, day(ONLINE_DAY))
    reconcile_days(settings, store, range(ONLINE_DAY + 1))  # the state holds days 0..10
    split = split_by_time(_training_frame(settings, store), 2, 2)
    service = fraud_feature_service(store)
    champion = _register(settings, split, service, seed=7, params=FAST_TRAINING)
    other = _register(settings, split, service, seed=8, params={**FAST_TRAINING, "depth": 3})
    ModelRegistry(settings).set_status(champion, "champion", "tests", "serving fixture")
    return ServingHome(settings, champion, other, split.evaluation)


def served_transactions(settings: EvergreenSettings, n: int = 20) -> list[dict]:
    """Raw transactions of the served day, as /predict bodies (JSON-ready)."""
    from evergreen.warehouse import connect

    with connect(settings.warehouse_path, read_only=True) as conn:
        frame = conn.sql(
            "SELECT transaction_id, customer_id, terminal_id, amount, tx_datetime, region, "
            "channel, card_type FROM raw_transactions WHERE partition_date = $d "
            "ORDER BY transaction_id LIMIT $n",
            params={"d": day(SERVED_DAY), "n": n},
        ).df()
    frame["tx_datetime"] = frame["tx_datetime"].map(
        lambda ts: ts.to_pydatetime().replace(tzinfo=dt.UTC).isoformat()
    )
    return frame.to_dict("records")


@pytest.fixture(scope="session")
def built_bento(serving_home):
    """The champion's bento, built once."""
    from evergreen.serving.bento import build_bento

    return build_bento(serving_home.settings, serving_home.champion)


@pytest.fixture(scope="session")
def served(serving_home, built_bento, tmp_path_factory):
    """The built bento served by ``bentoml serve`` on a free loopback port."""
    from evergreen.serving.process import BentoProcess

    log = tmp_path_factory.mktemp("served") / "serve.log"
    with BentoProcess(built_bento.tag, serving_home.settings, log_path=log) as process:
        yield process
