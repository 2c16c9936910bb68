"""Online/offline parity: what serving reads equals what training joins, at the same time.

The online store is filled one day at a time, as the ``online_features`` asset does. After day D
is online, sampled entities at sampled instants of the time it serves must read exactly (no
tolerance) what Feast's offline point-in-time join gives for the same entities and instants,
and what Feast's own ``get_online_features`` gives (``OnlineReader.read_through_feast``).
The request-time views have no Feast offline join (the training set computes them from the
warehouse): their parity is ``tests/features/test_realtime.py`` and the serving replay's.
"""

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from evergreen.features.customer_spending import CUSTOMER_SPENDING
from evergreen.features.feast_client import OnlineReader, feature_store, materialize_day
from evergreen.features.training_set import daily_feature_refs
from evergreen.warehouse import connect
from tests.conftest import day
from tests.features.conftest import at

SAMPLES_PER_DAY = 25


def _offline(store, service, requests: list[dict]) -> list[dict]:
    frame = pd.DataFrame(requests)
    frame["row"] = range(len(frame))
    frame["event_timestamp"] = pd.to_datetime(frame["tx_datetime"], utc=True)
    refs = daily_feature_refs(store, service)
    table = store.get_historical_features(entity_df=frame, features=refs).to_arrow()
    return table.sort_by("row").to_pylist()


def _online(reader: OnlineReader, request: dict, through_feast: bool = False) -> dict:
    rows = {k: [v] for k, v in request.items()}
    read = reader.read_through_feast if through_feast else reader.read
    return {k: v[0] for k, v in read(rows, request["tx_datetime"]).items()}


def _assert_parity(store, requests: list[dict]) -> int:
    """Compare every feature of every request; returns how many values were compared."""
    reader = OnlineReader.open(store)
    offline = _offline(store, reader.service, requests)
    names = [ref.split(":")[1] for ref in daily_feature_refs(store, reader.service)]
    compared = 0
    for request, expected in zip(requests, offline, strict=True):
        served = _online(reader, request)
        via_feast = _online(reader, request, through_feast=True)
        for name in names:
            assert served[name] == expected[name], (name, request, served[name], expected[name])
            assert type(served[name]) is type(via_feast[name]), (name, request)
            assert served[name] == via_feast[name], (name, request, via_feast[name])
            compared += 1
    return compared


def _sample_requests(settings, serving_day: int, rng: np.random.Generator) -> list[dict]:
    """Real (customer, terminal, amount) of the day plus unknown ids, at random instants."""
    with connect(settings.warehouse_path, read_only=True) as conn:
        rel = conn.sql(
            "SELECT customer_id, terminal_id, amount FROM raw_transactions "
            "WHERE partition_date = $d",
            params={"d": day(serving_day)},
        ).to_arrow_table()
    picks = rel.take(rng.choice(rel.num_rows, SAMPLES_PER_DAY, replace=False))
    keys = picks.to_pylist() + [{"customer_id": 10**9, "terminal_id": 10**9, "amount": 5.0}]
    seconds = rng.integers(0, 86_400, len(keys))
    start = at(serving_day)
    return [
        {**k, "tx_datetime": start + dt.timedelta(seconds=int(s))}
        for k, s in zip(keys, seconds, strict=True)
    ]


def test_online_equals_offline_day_after_day(simulated_feature_home):
    store = feature_store(simulated_feature_home)
    rng = np.random.default_rng(0)
    compared = 0
    for d in range(3, 11):
        materialize_day(store, day(d))
        requests = _sample_requests(simulated_feature_home, d + 1, rng)
        compared += _assert_parity(store, requests)
    assert compared > 8 * SAMPLES_PER_DAY * 15


def test_a_batch_read_equals_feasts_get_online_features(simulated_feature_home):
    store = feature_store(simulated_feature_home)
    materialize_day(store, day(10))  # as the day-after-day test left it: rows known at day 11
    requests = _sample_requests(simulated_feature_home, 11, np.random.default_rng(1))
    rows = {k: [r[k] for r in requests] for k in ("customer_id", "terminal_id", "amount")}
    reader = OnlineReader.open(store)
    for when in (at(11, 8), at(13, 0, 0, 1)):  # within, then past the TTL
        rows["tx_datetime"] = [when] * len(requests)

        served = reader.read(rows, when)

        assert served == reader.read_through_feast(rows, when)
    assert any(v is not None for v in reader.read(rows, at(11, 8))["terminal_risk_7d"])
    assert all(v is None for v in served["customer_avg_amount_7d"])


def test_online_equals_offline_up_to_and_past_the_ttl(hand_built):
    _, store = hand_built  # features of days 0..10; day 10's rows are known at day 11 00:00
    for d in range(11):
        materialize_day(store, day(d))
    times = [at(11, 12), at(12, 23, 59, 59), at(13, 0, 0, 0), at(13, 0, 0, 1), at(15)]
    requests = [
        {"customer_id": c, "terminal_id": t, "amount": 42.0, "tx_datetime": ts}
        for ts in times
        for c, t in ((1, 101), (3, 103), (3, 104))
    ]

    assert _assert_parity(store, requests) == len(requests) * 28  # every daily feature
    reader = OnlineReader.open(store)
    assert _online(reader, requests[0])["customer_avg_amount_1d"] == 110.0
    assert _online(reader, requests[-3])["customer_avg_amount_1d"] is None


def test_online_rows_are_the_newest_partition(simulated_feature_home):
    store = feature_store(simulated_feature_home)
    materialize_day(store, day(11))
    path = CUSTOMER_SPENDING.partition_path(simulated_feature_home.features_dir, day(11))
    newest = pq.read_table(path).slice(0, 20).to_pylist()
    rows = {
        "customer_id": [r["customer_id"] for r in newest],
        "terminal_id": [0] * len(newest),
        "amount": [1.0] * len(newest),
        "tx_datetime": [at(12, 8)] * len(newest),
    }

    served = OnlineReader.open(store).read(rows, at(12, 8))

    for name in CUSTOMER_SPENDING.features:
        assert served[name] == [r[name] for r in newest]


def test_an_older_day_never_replaces_a_newer_one_online(hand_built):
    settings, store = hand_built
    materialize_day(store, day(10))
    materialize_day(store, day(4))  # a late backfill of an old day

    served = OnlineReader.open(store).read(
        {"customer_id": [1], "terminal_id": [101], "amount": [1.0], "tx_datetime": [at(11, 9)]},
        at(11, 9),
    )

    assert served["customer_avg_amount_1d"] == [110.0]
