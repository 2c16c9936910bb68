"""The Fraud Detection Handbook's baseline, restated for the benchmark (bench-only code).

Chapter 3 of the handbook ("Baseline feature transformation", "Baseline fraud detection system"):

* features, computed in pandas over every transaction with its label:
  ``TX_DURING_WEEKEND`` (weekday >= 5), ``TX_DURING_NIGHT`` (hour <= 6); per customer, the number
  and the average amount of its transactions in the last 1, 7 and 30 days, the current one
  included (pandas time-based ``rolling``, window ``(t - w, t]``); per terminal, the number of
  transactions and the fraud share in windows of 1, 7 and 30 days that END a delay (7 days)
  before the transaction, ``(t - delay - w, t - delay]``, 0 where there are none;
* protocol: train on a week, leave a delay week, test on the following week; cards known to be
  compromised before a test day (a fraud in the training week, or in a delay-period day at
  least ``delay + 1`` days before the test day) are removed from that day's test transactions;
* models: scikit-learn ``LogisticRegression(random_state=0)`` and
  ``RandomForestClassifier(random_state=0, n_jobs=-1)`` (default 100 trees, unlimited depth), on
  the 15 features standardised with a ``StandardScaler`` fitted on the training set.

The per-group ``rolling`` of the handbook (one ``groupby.apply`` per customer and terminal) is
written here as one ``groupby(...).rolling`` per window: the same windows, the same values.
Identifiers stay in lower case (as in the warehouse); the 15 features carry the handbook's names.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

WINDOWS = (1, 7, 30)
DELAY_DAYS = 7

HANDBOOK_FEATURES: list[str] = [
    "TX_AMOUNT",
    "TX_DURING_WEEKEND",
    "TX_DURING_NIGHT",
    *[f"CUSTOMER_ID_{kind}_{w}DAY_WINDOW" for w in WINDOWS for kind in ("NB_TX", "AVG_AMOUNT")],
    *[f"TERMINAL_ID_{kind}_{w}DAY_WINDOW" for w in WINDOWS for kind in ("NB_TX", "RISK")],
]

# Test-set figures the handbook publishes for its baselines on its reference data (chapter 3.4).
PUBLISHED = {
    "logreg": {"roc_auc": 0.871, "average_precision": 0.606, "card_precision_at_100": 0.291},
    "random_forest": {"roc_auc": 0.867, "average_precision": 0.658, "card_precision_at_100": 0.287},
}
PUBLISHED_ROWS = {"train": 67_240, "train_frauds": 598, "test": 58_264, "test_frauds": 385}

LABELLED_TRANSACTIONS_SQL = """
SELECT t.transaction_id, t.tx_datetime, t.customer_id, t.terminal_id, t.amount,
       t.region, t.channel, t.card_type, l.label
FROM raw_transactions AS t
JOIN (
    SELECT transaction_id, arg_max(label, partition_date) AS label
    FROM raw_labels GROUP BY transaction_id
) AS l USING (transaction_id)
WHERE t.partition_date >= $first_day AND t.partition_date <= $last_day
ORDER BY t.transaction_id
"""


@dataclass(frozen=True)
class BaselineProtocol:
    """Train week, delay, test week (the handbook's defaults: 7, 7, 7 from 2018-07-25)."""

    train_start: dt.date = dt.date(2018, 7, 25)
    train_days: int = 7
    delay_days: int = DELAY_DAYS
    test_days: int = 7

    @property
    def train_end(self) -> dt.date:
        return self.train_start + dt.timedelta(days=self.train_days - 1)

    @property
    def test_start(self) -> dt.date:
        return self.train_start + dt.timedelta(days=self.train_days + self.delay_days)

    @property
    def test_end(self) -> dt.date:
        return self.test_start + dt.timedelta(days=self.test_days - 1)

    @property
    def history_start(self) -> dt.date:
        """The first day any training or test transaction's handbook features look at."""
        return self.train_start - dt.timedelta(days=self.delay_days + max(WINDOWS) + 1)

    def __str__(self) -> str:
        return (
            f"train {self.train_start}..{self.train_end}, delay {self.delay_days} days, "
            f"test {self.test_start}..{self.test_end}"
        )


def load_labelled_transactions(conn, first_day: dt.date, last_day: dt.date) -> pd.DataFrame:
    """Raw transactions of ``first_day..last_day`` with their (newest) label, from the
    warehouse; ``tx_datetime`` is naive UTC, as the handbook's ``TX_DATETIME``."""
    params = {"first_day": first_day, "last_day": last_day}
    frame = conn.sql(LABELLED_TRANSACTIONS_SQL, params=params).df()
    frame["label"] = frame["label"].astype(np.int8)
    return frame


def add_handbook_features(
    transactions: pd.DataFrame, windows=WINDOWS, delay_days: int = DELAY_DAYS
) -> pd.DataFrame:
    """The 15 handbook features for every transaction (columns ``transaction_id``,
    ``tx_datetime``, ``customer_id``, ``terminal_id``, ``amount``, ``label``), in input order."""
    out = transactions.sort_values("transaction_id").reset_index(drop=True)
    stamps = pd.to_datetime(out["tx_datetime"])
    out["TX_AMOUNT"] = out["amount"].astype(float)
    out["TX_DURING_WEEKEND"] = (stamps.dt.weekday >= 5).astype(int)
    out["TX_DURING_NIGHT"] = (stamps.dt.hour <= 6).astype(int)
    out = out.join(_customer_spending(out, windows))
    return out.join(_terminal_risk(out, windows, delay_days))


def _rolling(frame: pd.DataFrame, key: str, value: str, days: int, how: str) -> np.ndarray:
    """``how`` ('sum' or 'count') of ``value`` over ``(t - days, t]`` per ``key``, for a frame
    sorted by (key, tx_datetime): values in that frame's row order."""
    grouped = frame.set_index("tx_datetime").groupby(key, sort=True)[value]
    return getattr(grouped.rolling(f"{days}d"), how)().to_numpy()


def _by_key_and_time(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    # A stable sort by key and time (transaction id breaking ties) is the handbook's per-group
    # ``sort_values('TX_DATETIME')`` on a frame already ordered by transaction id.
    return frame.sort_values([key, "tx_datetime", "transaction_id"], kind="stable")


def _customer_spending(frame: pd.DataFrame, windows) -> pd.DataFrame:
    ordered = _by_key_and_time(frame, "customer_id")
    cols = {}
    for w in windows:
        count = _rolling(ordered, "customer_id", "TX_AMOUNT", w, "count")
        total = _rolling(ordered, "customer_id", "TX_AMOUNT", w, "sum")
        cols[f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW"] = count
        cols[f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"] = total / count  # count >= 1: itself
    return pd.DataFrame(cols, index=ordered.index)


def _terminal_risk(frame: pd.DataFrame, windows, delay_days: int) -> pd.DataFrame:
    ordered = _by_key_and_time(frame, "terminal_id").assign(_fraud=lambda f: f["label"] * 1.0)
    frauds_delay = _rolling(ordered, "terminal_id", "_fraud", delay_days, "sum")
    count_delay = _rolling(ordered, "terminal_id", "_fraud", delay_days, "count")
    cols = {}
    for w in windows:
        frauds = _rolling(ordered, "terminal_id", "_fraud", delay_days + w, "sum") - frauds_delay
        count = _rolling(ordered, "terminal_id", "_fraud", delay_days + w, "count") - count_delay
        with np.errstate(invalid="ignore", divide="ignore"):
            risk = np.where(count > 0, frauds / count, 0.0)
        cols[f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW"] = count
        cols[f"TERMINAL_ID_RISK_{w}DAY_WINDOW"] = risk
    return pd.DataFrame(cols, index=ordered.index)


def _day(frame: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(frame["tx_datetime"]).dt.date


def train_test_split(
    transactions: pd.DataFrame, protocol: BaselineProtocol
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The handbook's ``get_train_test_set``: the training week, and the test week without the
    cards known to be compromised before each test day. Both ordered by transaction id."""
    day = _day(transactions)
    train = transactions[(day >= protocol.train_start) & (day <= protocol.train_end)]
    known = set(train.loc[train["label"] == 1, "customer_id"])
    test_days = []
    for i in range(protocol.test_days):
        test_day = protocol.test_start + dt.timedelta(days=i)
        # Frauds of the day ``delay + 1`` before the test day are known by its start.
        known_day = protocol.train_end + dt.timedelta(days=i)
        on_known_day = transactions[day == known_day]
        known |= set(on_known_day.loc[on_known_day["label"] == 1, "customer_id"])
        todays = transactions[day == test_day]
        test_days.append(todays[~todays["customer_id"].isin(known)])
    test = pd.concat(test_days)
    return train.sort_values("transaction_id"), test.sort_values("transaction_id")


def scale_like_handbook(
    train: pd.DataFrame, test: pd.DataFrame, features: list[str] = HANDBOOK_FEATURES
) -> tuple[np.ndarray, np.ndarray]:
    """The handbook's ``scaleData``: a StandardScaler fitted on the training set, both scaled."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train[features])
    return scaler.transform(train[features]), scaler.transform(test[features])


def handbook_classifiers(seed: int = 0) -> dict:
    """The handbook's two baselines, with its parameters (``random_state=0`` there)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    return {
        "logreg": LogisticRegression(random_state=seed),
        "random_forest": RandomForestClassifier(random_state=seed, n_jobs=-1),
    }
