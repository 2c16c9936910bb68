"""A small but real Evergreen home for ``bench/deploy.py --real``: the real fraud bento.

Twelve simulated days (300 customers) ingested behind the checks, both feature tables
computed, the Feast repo applied and day 10 materialized online (so the bento's readiness
probe, a real online lookup, passes), and two CatBoost models trained on the point-in-time
training set: the champion and a second one (other seed and depth), each built into a bento
(``fraud_detection:<version>``). About a minute or two on two cores.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from evergreen.settings import EvergreenSettings

START = dt.date(2018, 4, 1)
DAYS = 12
FAST_TRAINING = {"iterations": 60, "od_wait": 20}
CREATED_AT = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class RealHome:
    settings: EvergreenSettings
    bentos: tuple[str, str]  # the champion's bento, then the other model's


def _day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


def ingest_and_features(
    settings: EvergreenSettings, days: int, customers: int, terminals: int, seed: int
) -> None:
    """Simulate ``days`` days from ``START``, ingest them behind the checks and compute both
    feature tables of each day."""
    from evergreen.features.customer_spending import CUSTOMER_SPENDING, customer_spending_rows
    from evergreen.features.tables import write_partition
    from evergreen.features.terminal_risk import TERMINAL_RISK, terminal_risk_rows
    from evergreen.ingest.partition import ingest_partition
    from evergreen.simulator import SimulatorConfig, simulate
    from evergreen.warehouse import warehouse

    config = SimulatorConfig(
        days=days,
        customers=customers,
        terminals=terminals,
        start=START,
        seed=seed,
        label_delay_days=settings.label_delay_days,
    )
    simulate(config, settings.landing_dir)
    for i in range(days):
        ingest_partition(settings, "transactions", _day(i))
        ingest_partition(settings, "labels", _day(i))
    with warehouse(settings, read_only=True) as conn:
        for i in range(days):
            rows = customer_spending_rows(conn, _day(i), CREATED_AT)
            write_partition(CUSTOMER_SPENDING, rows, settings.features_dir, _day(i))
            rows = terminal_risk_rows(conn, _day(i), CREATED_AT, settings.label_lookback_days)
            write_partition(TERMINAL_RISK, rows, settings.features_dir, _day(i))


def online_and_training_split(settings: EvergreenSettings, days: int, window_days: int):
    """``feast apply``, the day before the last online (the one the last day's payments read),
    and the point-in-time training set ending at the last day, split by time (two validation
    and two evaluation days). Returns the split and the FeatureService."""
    from evergreen.features.feast_client import (
        apply_definitions,
        feature_store,
        fraud_feature_service,
        materialize_day,
    )
    from evergreen.features.training_set import TrainingWindow, window_training_set
    from evergreen.models.training import split_by_time

    apply_definitions(settings)
    store = feature_store(settings)
    materialize_day(store, _day(days - 2))
    window = TrainingWindow.ending_at(_day(days - 1), window_days, settings.label_delay_days)
    service = fraud_feature_service(store)
    frame = window_training_set(settings, window, service, store)[1].to_pandas()
    return split_by_time(frame, 2, 2), service


def train_and_register(
    settings: EvergreenSettings, split, service, seed: int, params: dict, reason: str
) -> str:
    """Train a CatBoost model on ``split`` and register it; returns its tag."""
    from evergreen.models.registry import ModelRegistry
    from evergreen.models.training import Provenance, train_candidate

    trained = train_candidate(split.train, split.validation, seed=seed, params=params)
    trained.provenance = Provenance(
        feature_service=service.name, feature_service_version=service.tags["version"]
    )
    return ModelRegistry(settings).register(trained, "bench", reason).tag


def _train_two_models(settings: EvergreenSettings) -> tuple[str, str]:
    from evergreen.models.registry import ModelRegistry

    split, service = online_and_training_split(settings, DAYS, settings.training_window_days)
    reason = "deploy benchmark"
    tags = [
        train_and_register(settings, split, service, seed, params, reason)
        for seed, params in ((7, FAST_TRAINING), (8, {**FAST_TRAINING, "depth": 3}))
    ]
    ModelRegistry(settings).set_status(tags[0], "champion", "bench", reason)
    return tags[0], tags[1]


def build_real_home(home: Path) -> RealHome:
    """Everything the real bento needs to serve, built from scratch in ``home``."""
    from evergreen.serving.bento import build_bento

    settings = EvergreenSettings(
        home=home, label_delay_days=3, evaluation_days=2, validation_days=2
    ).ensure_dirs()
    ingest_and_features(settings, DAYS, customers=300, terminals=600, seed=7)
    champion, other = _train_two_models(settings)
    bentos = tuple(build_bento(settings, tag).tag for tag in (champion, other))
    return RealHome(settings, bentos)
