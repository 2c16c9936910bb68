"""From requests to scores: online features, the model's input rows, the model.

One code path for every place that scores a live transaction: the BentoML service, the bare
Starlette app and the in-process floor of ``bench/serving.py``. Features come from the Feast
online store through the FeatureService that training read (``OnlineReader``), at the
transaction's own time: the same point-in-time rule the training set's offline join applies, so
live traffic (time = now) and a replay of history (time = then) both read what was known when
the payment happened.

The model's input is built as plain rows (``model_rows``), not as a pandas frame: for one
transaction ``model_frame`` and a CatBoost ``Pool`` of a frame cost about 5 ms, rows and
CatBoost's own list input about 0.1 ms. ``model_rows`` applies ``model_frame``'s rules (the
model's column order, numbers as floats with None as NaN, categories as str with None as
``MISSING_CATEGORY``); ``input_frame`` is the model layer's frame of the same inputs, and the
infra validation compares the served scores with ``LoadedModel.predict_proba`` of that frame
before any deploy, to 1e-6.

An unknown customer or terminal (no row online, or one older than the TTL) gets its features as
missing (NaN), which CatBoost scores as it learnt to (the training set has such rows too); the
prediction names the views that were missing in ``features_missing``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evergreen.serving.schemas import Prediction, Transaction

if TYPE_CHECKING:
    from evergreen.features.feast_client import OnlineReader

REQUEST_FIELDS = ("customer_id", "terminal_id", "amount", "tx_datetime")
SEGMENTS = ("region", "channel", "card_type")
_NAN = float("nan")


@dataclass(frozen=True)
class ServingModel:
    """A model as the serving path needs it: its tag, threshold, inputs and scoring function
    (fraud probability of each row of ``model_rows``)."""

    tag: str
    threshold: float
    feature_names: list[str]
    cat_features: list[str]
    feature_service: str
    feature_service_version: str
    predict_rows: Callable[[list[list[Any]]], np.ndarray]


@dataclass(frozen=True)
class FeatureRead:
    """The online features of a batch: column lists in the batch's order, and per row the
    feature views that had no row for it."""

    values: dict[str, list[Any]]
    missing: list[list[str]]


@dataclass(frozen=True)
class ScoredBatch:
    """What one request produced: the features used, the model's input rows, the scores."""

    features: FeatureRead
    rows: list[list[Any]]
    scores: np.ndarray
    predictions: list[Prediction]


def read_features(reader: OnlineReader, transactions: Sequence[Transaction]) -> FeatureRead:
    """Online features for each transaction at its own ``tx_datetime`` (one read per instant;
    a single transaction is one read)."""
    by_time: dict[dt.datetime, list[int]] = defaultdict(list)
    for i, tx in enumerate(transactions):
        by_time[tx.tx_datetime].append(i)
    names = feature_names(reader)
    values: dict[str, list[Any]] = {name: [None] * len(transactions) for name in names}
    for at, rows in by_time.items():
        request = {f: [getattr(transactions[i], f) for i in rows] for f in REQUEST_FIELDS}
        read = reader.read(request, at)
        if len(by_time) == 1:
            values = {name: read[name] for name in names}
            break
        for name in names:
            for i, value in zip(rows, read[name], strict=True):
                values[name][i] = value
    return FeatureRead(values, _missing_views(reader, values, len(transactions)))


def feature_names(reader: OnlineReader) -> list[str]:
    """The FeatureService's features (not the join keys the online response also carries)."""
    names = [name for view in reader.view_features.values() for name in view]
    return names + [name for _, outputs in reader.derived_from.values() for name in outputs]


def _missing_views(reader: OnlineReader, values: dict[str, list[Any]], n: int) -> list[list[str]]:
    """Per row, the views whose features all read as None (no row within the TTL)."""
    missing: list[list[str]] = [[] for _ in range(n)]
    for view, names in reader.view_features.items():
        columns = [values[name] for name in names]
        for i in range(n):
            if all(column[i] is None for column in columns):
                missing[i].append(view)
    return missing


def _request_columns(transactions: Sequence[Transaction], features: FeatureRead) -> dict:
    columns: dict[str, list[Any]] = {
        "amount": [tx.amount for tx in transactions],
        **{s: [getattr(tx, s) for tx in transactions] for s in SEGMENTS},
    }
    for name, column in features.values.items():
        columns.setdefault(name, column)
    return columns


def model_rows(
    transactions: Sequence[Transaction], features: FeatureRead, model: ServingModel
) -> list[list[Any]]:
    """The model's input, one list per transaction in the model's feature order, with
    ``model_frame``'s types: float (None -> NaN) or, for a categorical feature, str (None ->
    ``MISSING_CATEGORY``)."""
    from evergreen.models.features import MISSING_CATEGORY

    columns = _request_columns(transactions, features)
    missing = [name for name in model.feature_names if name not in columns]
    if missing:
        raise ValueError(f"the request and features lack the model's input(s): {missing}")
    categorical = set(model.cat_features)
    converted = [
        [MISSING_CATEGORY if v is None else str(v) for v in columns[name]]
        if name in categorical
        else [_NAN if v is None else float(v) for v in columns[name]]
        for name in model.feature_names
    ]
    return [list(row) for row in zip(*converted, strict=True)]


def input_frame(transactions: Sequence[Transaction], features: FeatureRead) -> pd.DataFrame:
    """The model layer's frame of the same inputs (``model_frame``): the reference the infra
    validation scores offline with ``LoadedModel.predict_proba``."""
    from evergreen.models.features import model_frame

    return model_frame(pd.DataFrame(_request_columns(transactions, features)))


def score(
    reader: OnlineReader,
    model: ServingModel,
    transactions: Sequence[Transaction],
    request_id: str,
) -> ScoredBatch:
    """Read the features, build the rows and score them; one Prediction per transaction."""
    features = read_features(reader, transactions)
    rows = model_rows(transactions, features, model)
    scores = np.asarray(model.predict_rows(rows), dtype=float)
    threshold = model.threshold
    predictions = [
        Prediction(
            transaction_id=tx.transaction_id,
            fraud_probability=float(p),
            decision=bool(p >= threshold),
            threshold=threshold,
            model_version=model.tag,
            request_id=request_id,
            features_missing=missing,
        )
        for tx, p, missing in zip(transactions, scores, features.missing, strict=True)
    ]
    return ScoredBatch(features, rows, scores, predictions)
