"""Evergreen's Feast extensions give what Feast's own classes give: the bounded DuckDB offline
store the same joins, the Arrow write the same online rows as Feast's protobuf write."""

import copy
import datetime as dt

import pandas as pd
import pyarrow.parquet as pq

from evergreen.features.customer_spending import CUSTOMER_SPENDING
from evergreen.features.feast_client import OnlineReader, feature_store, repo_config
from evergreen.features.repo import FEATURE_SERVICE, FEATURE_TABLES
from tests.conftest import day
from tests.features.conftest import at

FEATURE_REFS = [f"{t.name}:{name}" for t in FEATURE_TABLES for name in t.features]


def _join(store, frame: pd.DataFrame) -> list[dict]:
    table = store.get_historical_features(entity_df=frame.copy(), features=FEATURE_REFS)
    return sorted(table.to_arrow().to_pylist(), key=lambda r: r["row"])


def test_the_bounded_offline_store_joins_exactly_as_feasts_duckdb_store(hand_built):
    from feast import FeatureStore
    from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig

    from evergreen.features.repo import FEATURE_REPO

    settings, store = hand_built
    config = repo_config(settings)
    config.offline_config = DuckDBOfflineStoreConfig()
    feasts = FeatureStore(repo_path=str(FEATURE_REPO), config=config)
    edges = [at(d, 0, 0, s) for d in range(15) for s in (0, 1)] + [at(12, 23, 59, 59)]
    times = edges + [at(d, h) for d in range(15) for h in (6, 12, 18)]
    frame = pd.DataFrame(
        {
            "row": range(len(times) * 3),
            "customer_id": [c for _ in times for c in (1, 3, 3)],
            "terminal_id": [t for _ in times for t in (101, 103, 104)],
            "event_timestamp": pd.to_datetime([t for t in times for _ in range(3)], utc=True),
        }
    )

    bounded = _join(store, frame)

    assert bounded == _join(feasts, frame)
    assert sum(r["customer_avg_amount_1d"] is not None for r in bounded) > len(times) // 2
    window = frame[frame["event_timestamp"] >= pd.Timestamp(at(9))]
    assert _join(store, window) == [r for r in bounded if r["row"] in set(window["row"])]
    naive = frame.assign(event_timestamp=frame["event_timestamp"].dt.tz_localize(None))
    assert _join(store, naive) == bounded  # a naive time is UTC, as Feast's coercion reads it


def test_source_bounds_span_the_ttl_before_the_first_entity_and_none_without_ttl(tmp_path):
    from evergreen.features.duckdb_offline_store import source_bounds
    from evergreen.features.feast_objects import FEATURE_TTL, feast_definitions

    views = feast_definitions(tmp_path).feature_views[:2]  # the daily views
    first, last = at(3, 5), at(9, 17)

    bounds = source_bounds(views, (first, last))

    assert bounds == {v.batch_source.name: (first - FEATURE_TTL, last) for v in views}
    untimed = copy.copy(views[1])
    untimed.ttl = dt.timedelta(0)
    assert set(source_bounds([*views, untimed], (first, last))) == {views[0].batch_source.name}


def test_the_arrow_write_stores_what_feasts_protobuf_write_stores(simulated_feature_home, tmp_path):
    from feast.utils import _convert_arrow_to_proto

    from evergreen.features.sqlite_online_store import (
        EvergreenSqliteOnlineStore,
        EvergreenSqliteOnlineStoreConfig,
    )

    view = feature_store(simulated_feature_home).get_feature_view(CUSTOMER_SPENDING.name)
    rows = pq.read_table(
        CUSTOMER_SPENDING.partition_path(simulated_feature_home.features_dir, day(6))
    )
    keys = {e.name: e.dtype.to_value_type() for e in view.entity_columns}
    tables = []
    for write in ("arrow", "protobuf"):
        config = repo_config(simulated_feature_home)
        config.online_config = EvergreenSqliteOnlineStoreConfig(path=str(tmp_path / write))
        online = EvergreenSqliteOnlineStore()
        online.update(config, [], [view], [], [], partial=False)
        if write == "arrow":
            online.online_write_arrow(config, view, rows)
        else:
            online.online_write_batch(config, view, _convert_arrow_to_proto(rows, view, keys), None)
        sql = f"SELECT * FROM {online.table_name(config, view)} ORDER BY entity_key"
        tables.append(online.connect(config).execute(sql).fetchall())

    assert tables[0] == tables[1]
    assert len(tables[0]) == rows.num_rows > 0


def test_pushed_rows_are_read_back_through_feasts_write_interface(hand_built):
    settings, store = hand_built
    pushed_at = at(20)
    frame = pd.DataFrame(
        {
            "customer_id": [777],
            **{name: [7 if "n_tx" in name else 7.5] for name in CUSTOMER_SPENDING.features},
            "event_timestamp": [pushed_at],
            "created_timestamp": [pushed_at],
        }
    )

    store.write_to_online_store(CUSTOMER_SPENDING.name, frame)

    reader = OnlineReader.open(store, FEATURE_SERVICE)
    rows = {"customer_id": [777], "terminal_id": [0], "amount": [15.0], "tx_datetime": [at(20, 9)]}
    read = reader.read(rows, at(20, 9))
    assert read["customer_avg_amount_7d"] == [7.5] and read["customer_n_tx_1d"] == [7]
    assert read["amount_to_avg_7d"] == [2.0]
    assert read == reader.read_through_feast(rows, at(20, 9))
    assert reader.read(rows, at(23))["customer_avg_amount_7d"] == [None]  # past the TTL
