"""The model's inputs: which training-set columns it reads, in which order, with which types.

Training, evaluation and serving all build their input through ``model_frame``, so a model sees
the same columns in the same order with the same types wherever it runs. Numeric features keep
their nulls as NaN (no row within a feature's TTL; CatBoost treats NaN as its own value);
categorical features are plain strings, a null becoming ``MISSING_CATEGORY``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from evergreen.features.realtime import REALTIME_FEATURES

CUSTOMER_FEATURES = [
    "customer_n_tx_1d",
    "customer_n_tx_7d",
    "customer_n_tx_30d",
    "customer_avg_amount_1d",
    "customer_avg_amount_7d",
    "customer_avg_amount_30d",
    "customer_std_amount_30d",
]
TERMINAL_FEATURES = [
    "terminal_n_tx_1d",
    "terminal_n_tx_7d",
    "terminal_n_tx_30d",
    "terminal_risk_1d",
    "terminal_risk_7d",
    "terminal_risk_30d",
    "terminal_run_frauds",  # the terminal's current fraud run (terminal_risk.py)
    "terminal_run_age_days",
    "terminal_run_min_amount",
    "terminal_run_max_amount",
    "terminal_labelled_tx_28d",
    "terminal_frauds_tx_28d",
    "terminal_risk_tx_28d",
    "terminal_first_fraud_age_28d",
    "terminal_n_tx_3d",
    "terminal_risk_3d",
]
REQUEST_FEATURES = [  # the on-demand views, computed from the request itself
    "tx_during_night",
    "tx_during_weekend",
    "amount_to_avg_7d",
    "amount_to_avg_30d",
    "amount_zscore_30d",
]
NUMERIC_FEATURES: list[str] = [
    "amount",
    *CUSTOMER_FEATURES,
    *TERMINAL_FEATURES,
    *REQUEST_FEATURES,
    *REALTIME_FEATURES,  # the card's and terminal's transactions up to this one (request time)
]
DAILY_ONLY_FEATURES: list[str] = [  # an ablation: without the request-time aggregates
    "amount",
    *CUSTOMER_FEATURES,
    *TERMINAL_FEATURES,
    *REQUEST_FEATURES,
    "region",
    "channel",
    "card_type",
]
CATEGORICAL_FEATURES: list[str] = ["region", "channel", "card_type"]
FEATURE_NAMES: list[str] = [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]
MISSING_CATEGORY = "<missing>"


def model_frame(
    df: pd.DataFrame,
    feature_names: Sequence[str] = FEATURE_NAMES,
    cat_features: Sequence[str] = CATEGORICAL_FEATURES,
) -> pd.DataFrame:
    """The model's input: ``feature_names`` in that order, numbers as float64 (nulls NaN),
    categoricals as str. Raises ``ValueError`` naming the columns the frame lacks."""
    missing = [name for name in feature_names if name not in df.columns]
    if missing:
        raise ValueError(f"the frame lacks the model's input column(s): {', '.join(missing)}")
    columns = {}
    for name in feature_names:
        column = df[name]
        if name in cat_features:
            columns[name] = (
                column.astype(object).where(column.notna(), MISSING_CATEGORY).astype(str)
            )
        else:
            columns[name] = pd.to_numeric(column, errors="raise").astype(np.float64)
    return pd.DataFrame(columns, index=df.index)
