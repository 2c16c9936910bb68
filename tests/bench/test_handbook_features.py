"""The benchmark's handbook features and split against a per-group restatement of the handbook."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from bench.handbook_features import (
    HANDBOOK_FEATURES,
    BaselineProtocol,
    add_handbook_features,
    train_test_split,
)

START = dt.datetime(2018, 4, 1)


def random_transactions(n: int = 3000, days: int = 60, seed: int = 3) -> pd.DataFrame:
    """Transactions of a few customers and terminals, some on the same second, ~5 % frauds."""
    rng = np.random.default_rng(seed)
    seconds = rng.integers(0, days * 86_400, n)
    seconds[1::50] = seconds[::50][: len(seconds[1::50])]  # exact timestamp ties
    return pd.DataFrame(
        {
            "transaction_id": np.arange(n),
            "tx_datetime": START + pd.to_timedelta(seconds, unit="s"),
            "customer_id": rng.integers(0, 40, n),
            "terminal_id": rng.integers(0, 30, n),
            "amount": rng.uniform(1, 300, n).round(2),
            "label": (rng.random(n) < 0.05).astype(np.int8),
        }
    ).sort_values("tx_datetime", kind="stable")


def per_group_reference(tx: pd.DataFrame, delay: int = 7) -> pd.DataFrame:
    """The handbook's formulation: each customer's and terminal's transactions in time order,
    pandas time-based rolling windows on a datetime index, one group at a time."""
    tx = tx.sort_values("transaction_id").reset_index(drop=True)
    out = pd.DataFrame(index=tx["transaction_id"])
    out["TX_AMOUNT"] = tx["amount"].to_numpy()
    out["TX_DURING_WEEKEND"] = (tx["tx_datetime"].dt.weekday >= 5).astype(int).to_numpy()
    out["TX_DURING_NIGHT"] = (tx["tx_datetime"].dt.hour <= 6).astype(int).to_numpy()
    for _, group in tx.groupby("customer_id"):
        g = group.sort_values("tx_datetime", kind="stable")
        amounts = pd.Series(g["amount"].to_numpy(), index=g["tx_datetime"])
        for w in (1, 7, 30):
            count = amounts.rolling(f"{w}d").count().to_numpy()
            total = amounts.rolling(f"{w}d").sum().to_numpy()
            out.loc[g["transaction_id"], f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW"] = count
            out.loc[g["transaction_id"], f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW"] = total / count
    for _, group in tx.groupby("terminal_id"):
        g = group.sort_values("tx_datetime", kind="stable")
        frauds = pd.Series(g["label"].astype(float).to_numpy(), index=g["tx_datetime"])
        base = frauds.rolling(f"{delay}d")
        base_sum, base_count = base.sum(), base.count()
        for w in (1, 7, 30):
            nb_fraud = frauds.rolling(f"{delay + w}d").sum() - base_sum
            nb_tx = frauds.rolling(f"{delay + w}d").count() - base_count
            risk = (nb_fraud / nb_tx).fillna(0)
            out.loc[g["transaction_id"], f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW"] = nb_tx.to_numpy()
            out.loc[g["transaction_id"], f"TERMINAL_ID_RISK_{w}DAY_WINDOW"] = risk.to_numpy()
    return out[HANDBOOK_FEATURES]


def test_features_equal_the_per_group_formulation():
    tx = random_transactions()
    ours = add_handbook_features(tx).set_index("transaction_id")[HANDBOOK_FEATURES]
    expected = per_group_reference(tx)
    pd.testing.assert_frame_equal(ours, expected, check_dtype=False, atol=1e-9, rtol=0)


def test_windows_by_hand():
    """One customer at one terminal: four transactions, the second a fraud."""
    stamps = [START + dt.timedelta(hours=h) for h in (1, 20, 24 * 8, 24 * 8 + 2)]
    tx = pd.DataFrame(
        {
            "transaction_id": [1, 2, 3, 4],
            "tx_datetime": stamps,
            "customer_id": 5,
            "terminal_id": 9,
            "amount": [10.0, 30.0, 50.0, 70.0],
            "label": np.array([0, 1, 0, 0], dtype=np.int8),
        }
    )
    f = add_handbook_features(tx).set_index("transaction_id")
    assert f["CUSTOMER_ID_NB_TX_1DAY_WINDOW"].tolist() == [1, 2, 1, 2]  # itself included
    assert f["CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"].tolist() == [10, 20, 50, 60]
    assert f["CUSTOMER_ID_NB_TX_30DAY_WINDOW"].tolist() == [1, 2, 3, 4]
    assert f["TX_DURING_NIGHT"].tolist() == [1, 0, 1, 1]  # 01:00, 20:00, 00:00, 02:00
    # Day 8: the window (t-8d, t-7d] holds the first day's transactions (one a fraud) for the
    # first of them; the 02:00 one no longer sees the 01:00 genuine one.
    assert f["TERMINAL_ID_NB_TX_1DAY_WINDOW"].tolist() == [0, 0, 2, 1]
    assert f["TERMINAL_ID_RISK_1DAY_WINDOW"].tolist() == [0, 0, 0.5, 1.0]
    assert f["TERMINAL_ID_NB_TX_7DAY_WINDOW"].tolist() == [0, 0, 2, 2]


def day_rows(day: dt.date, customers_labels) -> list[dict]:
    at = dt.datetime.combine(day, dt.time(12))
    return [{"customer_id": c, "tx_datetime": at, "label": y} for c, y in customers_labels]


@pytest.fixture
def protocol() -> BaselineProtocol:
    return BaselineProtocol(dt.date(2018, 4, 10), train_days=2, delay_days=2, test_days=3)


def test_split_removes_cards_known_before_each_test_day(protocol):
    d = lambda i: protocol.train_start + dt.timedelta(days=i)  # noqa: E731
    rows = (
        day_rows(d(0), [(1, 1), (2, 0)])  # card 1: fraud in the training week
        + day_rows(d(2), [(3, 1)])  # delay day 1: known from test day 2 (3 days later)
        + day_rows(d(3), [(4, 1)])  # delay day 2: known from test day 3
        + day_rows(d(4), [(1, 0), (2, 0), (3, 1), (4, 1), (5, 1)])  # test day 1
        + day_rows(d(5), [(3, 0), (4, 0), (5, 0)])  # test day 2
        + day_rows(d(6), [(3, 0), (4, 0), (5, 0)])  # test day 3
    )
    frame = pd.DataFrame(rows)
    frame.insert(0, "transaction_id", range(len(frame)))
    train, test = train_test_split(frame, protocol)
    assert train["customer_id"].tolist() == [1, 2]
    kept = test.groupby(test["tx_datetime"].dt.date)["customer_id"].apply(list).to_dict()
    # A test-day fraud is never "known" within the test week: card 5 stays throughout.
    assert kept == {d(4): [2, 3, 4, 5], d(5): [4, 5], d(6): [5]}
