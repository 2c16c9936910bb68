"""Which logged predictions the monitors read: one per (transaction, model), or the one each
client received."""

import datetime as dt

import duckdb

from evergreen.loop.live_data import LABELS_TABLE, LIVE_TABLE, matured_predictions
from evergreen.models.features import CATEGORICAL_FEATURES

DAY = dt.date(2018, 4, 10)


def _warehouse() -> duckdb.DuckDBPyConnection:
    """A warehouse holding t1 answered by the champion, then retried on the canary (twice,
    the same answer), and t2 answered by the champion only; both labelled."""
    conn = duckdb.connect()
    segments = ", ".join(f"{name} VARCHAR" for name in CATEGORICAL_FEATURES)
    conn.execute(
        f"CREATE TABLE {LIVE_TABLE} (request_id VARCHAR, transaction_id VARCHAR, "
        "customer_id VARCHAR, tx_datetime TIMESTAMP, model_version VARCHAR, "
        "fraud_probability DOUBLE, threshold DOUBLE, amount DOUBLE, "
        f"{segments}, features JSON, partition_date DATE, predicted_at TIMESTAMP)"
    )
    conn.execute(
        f"CREATE TABLE {LABELS_TABLE} (transaction_id VARCHAR, label TINYINT, partition_date DATE)"
    )
    nulls = ", ".join("NULL" for _ in CATEGORICAL_FEATURES)
    rows = [  # request, transaction, model, score, answered at (seconds past midnight)
        ("r1", "t1", "model:achampion", 0.1, 1),
        ("r2", "t1", "model:canary", 0.8, 2),
        ("r3", "t1", "model:canary", 0.8, 3),
        ("r4", "t2", "model:achampion", 0.2, 4),
    ]
    for request, tx, model, score, second in rows:
        conn.execute(
            f"INSERT INTO {LIVE_TABLE} VALUES ($r, $t, 'c', $day, $m, $s, 0.5, 10.0, "
            f"{nulls}, '{{}}', $day, $day::TIMESTAMP + to_seconds($sec))",
            {"r": request, "t": tx, "m": model, "s": score, "day": DAY, "sec": second},
        )
    conn.execute(f"INSERT INTO {LABELS_TABLE} VALUES ('t1', 1, $d), ('t2', 0, $d)", {"d": DAY})
    return conn


def test_every_model_that_answered_a_transaction_has_one_row():
    frame = matured_predictions(_warehouse(), DAY, DAY, DAY)

    pairs = sorted(zip(frame["transaction_id"], frame["model_version"], strict=True))
    assert pairs == [("t1", "model:achampion"), ("t1", "model:canary"), ("t2", "model:achampion")]


def test_served_only_keeps_the_answer_the_client_received():
    # The canary's retry answered t1 last: its score is what served, whichever model's tag
    # sorts first.
    frame = matured_predictions(_warehouse(), DAY, DAY, DAY, served_only=True)

    served = dict(zip(frame["transaction_id"], frame["model_version"], strict=True))
    assert served == {"t1": "model:canary", "t2": "model:achampion"}
    assert frame.set_index("transaction_id").loc["t1", "fraud_probability"] == 0.8
