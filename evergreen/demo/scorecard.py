"""How the loop did: average precision of what served, period by period, beside a model
frozen at the start and scored offline on exactly the features serving logged."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from evergreen.settings import EvergreenSettings


@dataclass(frozen=True)
class Period:
    """A named stretch of transaction days, inclusive."""

    name: str
    first_day: dt.date
    last_day: dt.date


@dataclass(frozen=True)
class PeriodScore:
    """Served and frozen AP over one period's matured transactions."""

    period: Period
    transactions: int
    frauds: int
    served_ap: float | None
    frozen_ap: float | None
    served_models: str
    oracle_ap: float | None = None  # the daily oracle's scores, pooled (``loop.recovery``)


def score_periods(
    settings: EvergreenSettings, periods: list[Period], frozen_tag: str
) -> list[PeriodScore]:
    """AP of the served scores and of the frozen model's, per period (matured labels only)."""
    from evergreen.loop.live_data import matured_predictions, newest_label_day
    from evergreen.loop.recovery import oracle_path
    from evergreen.models.registry import ModelRegistry
    from evergreen.warehouse import warehouse

    frozen = ModelRegistry(settings).load(frozen_tag)
    path = oracle_path(settings)
    oracle = (
        pd.read_parquet(path, columns=["transaction_id", "oracle_score"]) if path.exists() else None
    )
    scores = []
    with warehouse(settings, read_only=True) as conn:
        labels_by = newest_label_day(conn)
        for period in periods:
            frame = matured_predictions(
                conn, period.first_day, period.last_day, labels_by, served_only=True
            )
            if oracle is not None:
                frame = frame.merge(oracle.drop_duplicates("transaction_id"), "left")
            scores.append(_score(period, frame, frozen))
    return scores


def _score(period: Period, frame: pd.DataFrame, frozen) -> PeriodScore:
    from sklearn.metrics import average_precision_score

    frauds = int(frame["label"].sum()) if len(frame) else 0
    if frauds == 0 or frauds == len(frame):
        return PeriodScore(period, len(frame), frauds, None, None, "")
    served = average_precision_score(frame["label"], frame["fraud_probability"])
    frozen_ap = average_precision_score(frame["label"], frozen.predict_proba(frame))
    counts = frame["model_version"].value_counts().items()
    models = ", ".join(f"{tag.split(':')[-1][:8]} ({n})" for tag, n in counts)
    oracle_ap = None
    if "oracle_score" in frame and frame["oracle_score"].notna().all():
        oracle_ap = float(average_precision_score(frame["label"], frame["oracle_score"]))
    return PeriodScore(
        period, len(frame), frauds, float(served), float(frozen_ap), models, oracle_ap
    )
