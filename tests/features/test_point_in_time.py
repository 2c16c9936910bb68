"""Point-in-time correctness through Feast's DuckDB offline store, on hand-built cases
(the ``hand_built`` fixture describes them)."""

import pandas as pd
import pytest

from evergreen.features.realtime import REALTIME_FEATURES
from evergreen.features.repo import FEATURE_SERVICE
from evergreen.features.training_set import (
    TrainingWindow,
    build_training_set,
    daily_feature_refs,
    labelled_transactions,
)
from evergreen.warehouse import connect
from tests.conftest import day
from tests.features.conftest import at, tx_id


def _historical(store, entities: list[dict]) -> list[dict]:
    """Features of the FeatureService for (customer, terminal, time, amount) rows, in order."""
    frame = pd.DataFrame(entities)
    frame["row"] = range(len(frame))
    frame["event_timestamp"] = pd.to_datetime(frame["ts"], utc=True)
    frame["tx_datetime"] = frame["event_timestamp"]
    frame = frame.drop(columns="ts")
    refs = daily_feature_refs(store, store.get_feature_service(FEATURE_SERVICE))
    table = store.get_historical_features(entity_df=frame, features=refs).to_arrow()
    return sorted(table.to_pylist(), key=lambda r: r["row"])


def _customer_1(ts, amount=1.0):
    return {"customer_id": 1, "terminal_id": 101, "ts": ts, "amount": amount}


def test_a_transaction_sees_the_day_before_never_its_own(hand_built):
    _, store = hand_built
    times = [at(5, 12), at(5, 0, 0, 0), at(4, 23, 59, 59), at(0, 12)]

    rows = _historical(store, [_customer_1(t) for t in times])

    assert [r["customer_avg_amount_1d"] for r in rows] == [50.0, 50.0, 40.0, None]
    assert [r["customer_n_tx_30d"] for r in rows] == [5, 5, 4, None]


def test_rows_older_than_the_ttl_are_not_used(hand_built):
    _, store = hand_built  # the newest row is day 10's, known at day 11 00:00; TTL is 2 days
    times = [at(12, 12), at(13, 0, 0, 0), at(13, 0, 0, 1), at(14, 12)]

    rows = _historical(store, [_customer_1(t) for t in times])

    assert [r["customer_avg_amount_1d"] for r in rows] == [110.0, 110.0, None, None]
    assert [r["amount_to_avg_7d"] for r in rows][2:] == [None, None]


def test_late_labels_are_not_used_before_they_land(hand_built):
    _, store = hand_built
    entities = [
        {"customer_id": 3, "terminal_id": 103, "ts": at(8, 12), "amount": 1.0},
        {"customer_id": 3, "terminal_id": 103, "ts": at(9, 1), "amount": 1.0},
        {"customer_id": 3, "terminal_id": 104, "ts": at(2, 23, 59, 59), "amount": 1.0},
        {"customer_id": 3, "terminal_id": 104, "ts": at(3, 0, 0, 0), "amount": 1.0},
    ]

    rows = _historical(store, entities)

    assert (rows[0]["terminal_n_tx_7d"], rows[0]["terminal_risk_7d"]) == (1, 0.0)
    assert (rows[1]["terminal_n_tx_7d"], rows[1]["terminal_risk_7d"]) == (2, 0.5)
    assert rows[2]["terminal_risk_1d"] is None
    assert (rows[3]["terminal_n_tx_1d"], rows[3]["terminal_risk_1d"]) == (1, 1.0)


def test_request_features_come_from_the_request(hand_built):
    _, store = hand_built

    night, noon_sunday = _historical(store, [_customer_1(at(5, 3), 100.0), _customer_1(at(7, 12))])

    assert (night["tx_during_night"], night["tx_during_weekend"]) == (1, 0)  # Fri 2018-04-06
    assert night["amount_to_avg_7d"] == pytest.approx(100.0 / 30.0)  # days 0..4: 10..50
    assert (noon_sunday["tx_during_night"], noon_sunday["tx_during_weekend"]) == (0, 1)


def test_labels_are_as_known_at_the_cutoff(hand_built):
    settings, _ = hand_built

    def labels(cutoff: int) -> dict[int, int]:
        window = TrainingWindow(day(0), day(1), day(cutoff))
        with connect(settings.warehouse_path, read_only=True) as conn:
            frame = labelled_transactions(conn, window)
        return dict(zip(frame["transaction_id"], frame["label"], strict=True))

    early = labels(5)
    assert early == {tx_id(0, 0): 0, tx_id(1, 0): 0, tx_id(1, 2): 0, tx_id(1, 3): 1}
    late = labels(9)
    assert late[tx_id(0, 0)] == 1 and late[tx_id(1, 1)] == 1


def test_training_set_joins_each_transaction_at_its_time(hand_built):
    settings, store = hand_built
    window = TrainingWindow(day(0), day(8), day(11))
    with connect(settings.warehouse_path, read_only=True) as conn:
        entities = labelled_transactions(conn, window)
        table = build_training_set(store, entities, FEATURE_SERVICE, warehouse=conn)

    rows = {r["transaction_id"]: r for r in table.to_pylist()}
    assert table.num_rows == len(entities) == len(rows)
    assert [rows[tx_id(i, 0)]["customer_avg_amount_1d"] for i in range(4)] == [
        None,
        10.0,
        20.0,
        30.0,
    ]
    assert rows[tx_id(0, 0)]["label"] == 1  # the correction landed on day 9 <= cut-off
    assert table["transaction_id"].to_pylist() == sorted(rows)


def test_request_time_windows_end_just_before_the_transaction(hand_built):
    settings, store = hand_built
    window = TrainingWindow(day(0), day(8), day(11))
    with connect(settings.warehouse_path, read_only=True) as conn:
        entities = labelled_transactions(conn, window)
        table = build_training_set(store, entities, FEATURE_SERVICE, warehouse=conn)
    rows = {r["transaction_id"]: r for r in table.to_pylist()}

    # Customer 1 pays 10 x (day + 1) at noon daily: day 3's payment sees days 0..2 over 7 days;
    # day 2's noon is exactly 24 h before, outside (T - 24 h, T).
    day_3 = rows[tx_id(3, 0)]
    assert (day_3["card_tx_count_24h"], day_3["card_tx_count_7d"]) == (0, 3)
    assert (day_3["card_amount_sum_7d"], day_3["card_amount_mean_7d"]) == (60.0, 20.0)
    assert day_3["card_amount_to_mean_7d"] == 2.0
    assert day_3["card_seconds_since_previous"] == 86_400.0
    assert (day_3["card_amount_mean_24h"], day_3["card_amount_to_mean_24h"]) == (None, None)
    first = rows[tx_id(0, 0)]  # the card's first payment: empty windows
    assert (first["card_tx_count_30d"], first["card_amount_sum_30d"]) == (0, 0.0)
    assert first["card_seconds_since_previous"] is None
    # Customer 3 on day 1: 500 at 10:00 (terminal 103), 20 at 11:00 (103), 30 at 12:00 (104).
    eleven, noon = rows[tx_id(1, 2)], rows[tx_id(1, 3)]
    assert (eleven["card_tx_count_1h"], eleven["card_tx_count_24h"]) == (0, 1)
    assert eleven["card_amount_to_mean_24h"] == 20.0 / 500.0
    assert (eleven["terminal_tx_count_1h"], eleven["terminal_tx_count_24h"]) == (0, 1)
    assert (noon["card_tx_count_24h"], noon["card_amount_mean_24h"]) == (2, 260.0)
    assert (noon["terminal_tx_count_24h"], noon["card_seconds_since_previous"]) == (0, 3600.0)


def test_training_set_equals_feasts_own_retrieval_of_the_service(hand_built):
    settings, store = hand_built
    window = TrainingWindow(day(0), day(8), day(11))
    service = store.get_feature_service(FEATURE_SERVICE)
    with connect(settings.warehouse_path, read_only=True) as conn:
        entities = labelled_transactions(conn, window)
        table = build_training_set(store, entities, service, warehouse=conn)

    refs = daily_feature_refs(store, service)
    feasts = store.get_historical_features(entity_df=entities, features=refs).to_arrow()
    daily = table.select(feasts.column_names)  # the request-time views: test_realtime.py
    assert daily.equals(feasts.sort_by("transaction_id"), check_metadata=False)
    assert set(REALTIME_FEATURES) <= set(table.column_names)
    assert {"tx_during_night", "amount_zscore_30d"} <= set(table.column_names)
