"""Benchmark: the feature layer's training-set join, online materialization and online reads.

Prints a table; ``--json PATH`` writes the same figures. The feature tables are synthetic but
have the real schemas and layout (one Parquet file per day under ``features/<table>/date=D/``)
and the real Feast repo is applied over them, so both retrieval paths read the very same files:

* point-in-time join of N labelled transactions (1M and 5M): Feast's DuckDB offline store
  (``get_historical_features``) against the same join written as a DuckDB ASOF join (the floor:
  newest ``created`` per key and time, scan bounded to the TTL window); checksums must match;
* online materialization of one day for 100k and 1M entities: entities per second;
* ``get_online_features`` through the serving path (FeatureService with on-demand views and the
  TTL guard), 1 and 100 entities per request: p50 and p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from evergreen.features.repo import FEATURE_TABLES
from evergreen.features.tables import FeatureTable, known_at
from evergreen.settings import EvergreenSettings

START = dt.date(2018, 4, 1)
TTL_DAYS = 2  # evergreen.features.definitions.FEATURE_TTL, without importing Feast here


# ----------------------------------------------------------------------------- synthetic data


def _feature_select(table: FeatureTable, entities: int, day: dt.date) -> str:
    """SQL for one day's rows of ``table``: every entity, random values of the right types."""
    cols = [f"e::BIGINT AS {table.join_key}"]
    for name, dtype in table.features.items():
        expr = "(random() * 20)::BIGINT" if str(dtype) == "int64" else "random() * 100"
        cols.append(f"{expr} AS {name}")
    ts = known_at(day).strftime("%Y-%m-%d %H:%M:%S")
    cols.append(f"TIMESTAMPTZ '{ts}+00' AS event_timestamp")
    cols.append(f"TIMESTAMPTZ '{ts}+00' + INTERVAL 3 HOUR AS created_timestamp")
    return f"SELECT {', '.join(cols)} FROM range({entities}) AS t(e)"


def write_feature_days(features_dir: Path, table: FeatureTable, entities: int, days: int) -> None:
    """``days`` daily partitions of ``table`` with ``entities`` rows each."""
    conn = duckdb.connect()
    conn.execute("SELECT setseed(0.42)")
    for i in range(days):
        d = START + dt.timedelta(days=i)
        path = table.partition_path(features_dir, d)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn.execute(
            f"COPY ({_feature_select(table, entities, d)}) TO '{path}' "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
    conn.close()


def entity_frame(
    rows: int, customers: int, terminals: int, first_day: int, days: int
) -> pd.DataFrame:
    """``rows`` labelled transactions at uniform times over ``days`` days from ``first_day``."""
    rng = np.random.default_rng(0)
    start = pd.Timestamp(START + dt.timedelta(days=first_day), tz="UTC")
    seconds = np.sort(rng.integers(0, days * 86_400, rows))
    return pd.DataFrame(
        {
            "transaction_id": np.arange(rows, dtype=np.int64),
            "customer_id": rng.integers(0, customers, rows, dtype=np.int64),
            "terminal_id": rng.integers(0, terminals, rows, dtype=np.int64),
            "event_timestamp": start + pd.to_timedelta(seconds, unit="s"),
        }
    )


# ----------------------------------------------------------------------------- training-set join

FEATURE_REFS = [f"{t.name}:{name}" for t in FEATURE_TABLES for name in t.features]
FEATURE_COLUMNS = [name for t in FEATURE_TABLES for name in t.features]


def feast_join(store, entities: pd.DataFrame):
    """Feast's point-in-time join on its DuckDB offline store (the training path)."""
    job = store.get_historical_features(entity_df=entities.copy(), features=FEATURE_REFS)
    return job.to_arrow()


def _newest_rows_sql(table: FeatureTable, features_dir: Path) -> str:
    """Rows of the table in the TTL window, one per key and event time: the newest created."""
    cols = ", ".join(f"arg_max({n}, created_timestamp) AS {n}" for n in table.features)
    return f"""
        SELECT {table.join_key}, event_timestamp, {cols}
        FROM read_parquet('{table.source_glob(features_dir)}', hive_partitioning = true)
        WHERE date >= $first_date AND event_timestamp >= $low AND event_timestamp <= $high
        GROUP BY {table.join_key}, event_timestamp
    """


def asof_join(features_dir: Path, entities: pd.DataFrame):
    """The same join written directly as DuckDB ASOF joins on the same files (the floor)."""
    low = entities["event_timestamp"].min() - pd.Timedelta(days=TTL_DAYS)
    high = entities["event_timestamp"].max()
    params = {"low": low, "high": high, "first_date": (low - pd.Timedelta(days=1)).date()}
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    conn.register("entities", entities)
    selects, joins = [], []
    for i, t in enumerate(FEATURE_TABLES):
        a = f"f{i}"
        conn.execute(f"CREATE TEMP TABLE {a} AS {_newest_rows_sql(t, features_dir)}", params)
        fresh = f"{a}.event_timestamp >= e.event_timestamp - INTERVAL {TTL_DAYS} DAY"
        selects += [f"CASE WHEN {fresh} THEN {a}.{n} END AS {n}" for n in t.features]
        joins.append(
            f"ASOF LEFT JOIN {a} ON e.{t.join_key} = {a}.{t.join_key} "
            f"AND e.event_timestamp >= {a}.event_timestamp"
        )
    sql = (
        f"SELECT e.*, {', '.join(selects)} FROM entities AS e {' '.join(joins)} "
        "ORDER BY e.transaction_id"
    )
    result = conn.sql(sql).to_arrow_table()
    conn.close()
    return result


def checksum(table) -> str:
    """Order-independent checksum of the transaction ids and every feature value."""
    values = ", ".join(f"{c}::DOUBLE" for c in FEATURE_COLUMNS)
    conn = duckdb.connect()
    conn.register("result", table)
    total, rows = conn.sql(
        f"SELECT sum(hash(transaction_id, {values})::HUGEINT), count(*) FROM result"
    ).fetchall()[0]
    conn.close()
    return f"{rows}:{total}"


def _median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times), result


def bench_pit(workdir: Path, rows: int, history_days: int, window_days: int, repeats: int) -> dict:
    """Feast vs the ASOF floor for ``rows`` labelled transactions, same files, same run."""
    from evergreen.features.store import apply_definitions, feature_store

    settings = EvergreenSettings(home=workdir / f"pit{rows}")
    entities_per_day = rows // window_days // 2  # about two transactions per card a day
    for table in FEATURE_TABLES:
        write_feature_days(settings.features_dir, table, entities_per_day, history_days)
    apply_definitions(settings)
    store = feature_store(settings)
    first_day = history_days - window_days + 1
    frame = entity_frame(rows, entities_per_day, entities_per_day, first_day, window_days)
    feast_join(store, frame.head(1000))  # warm up: registry, ibis backend, file metadata
    feast_s, feast_result = _median_time(lambda: feast_join(store, frame), repeats)
    asof_s, asof_result = _median_time(lambda: asof_join(settings.features_dir, frame), repeats)
    same = checksum(feast_result) == checksum(asof_result)
    shutil.rmtree(settings.home)
    return {
        "feast_s": feast_s,
        "asof_s": asof_s,
        "ratio": feast_s / asof_s,
        "checksums_match": same,
    }


def bench_on_demand(workdir: Path, rows: int) -> float:
    """Seconds for the full FeatureService (with the on-demand views) on ``rows`` rows."""
    from evergreen.features.repo import FEATURE_SERVICE
    from evergreen.features.store import apply_definitions, feature_store

    settings = EvergreenSettings(home=workdir / "service")
    per_day = rows // 10 // 2
    for table in FEATURE_TABLES:
        write_feature_days(settings.features_dir, table, per_day, 20)
    apply_definitions(settings)
    store = feature_store(settings)
    frame = entity_frame(rows, per_day, per_day, 11, 10)
    frame["tx_datetime"] = frame["event_timestamp"]
    frame["amount"] = 50.0
    service = store.get_feature_service(FEATURE_SERVICE)
    began = time.perf_counter()
    store.get_historical_features(entity_df=frame, features=service).to_arrow()
    seconds = time.perf_counter() - began
    shutil.rmtree(settings.home)
    return seconds


# ----------------------------------------------------------------------------- online store


def bench_online(workdir: Path, entities: int, feast_sqlite: bool = False) -> dict:
    """Materialize one day of both views for ``entities`` entities each into the online store."""
    from evergreen.features.store import apply_definitions, feature_store, materialize_day

    settings = EvergreenSettings(home=workdir / f"online{entities}{'f' if feast_sqlite else ''}")
    for table in FEATURE_TABLES:
        write_feature_days(settings.features_dir, table, entities, 2)
    apply_definitions(settings)
    store = feature_store(settings)
    if feast_sqlite:
        store = _with_feast_sqlite(settings)
    day = START + dt.timedelta(days=1)
    began = time.perf_counter()
    materialize_day(store, day)
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "entities_per_s": entities / seconds, "settings": settings}


def _with_feast_sqlite(settings: EvergreenSettings):
    """The same repo on Feast's own SQLite online store (for comparison), applied."""
    from feast import FeatureStore
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

    from evergreen.features.definitions import feast_definitions
    from evergreen.features.repo import FEATURE_REPO
    from evergreen.features.store import repo_config

    config = repo_config(settings)
    config.online_config = SqliteOnlineStoreConfig(path=str(settings.feast_dir / "feast.db"))
    store = FeatureStore(repo_path=str(FEATURE_REPO), config=config)
    store.apply(feast_definitions(settings.features_dir).objects)
    return store


def bench_latency(settings: EvergreenSettings, entities: int, batch: int, requests: int) -> dict:
    """p50/p99 (ms) of the serving path's read for ``batch`` random entities per request."""
    from evergreen.features.store import OnlineReader, feature_store

    reader = OnlineReader.open(feature_store(settings))
    rng = np.random.default_rng(1)
    at = dt.datetime.combine(START + dt.timedelta(days=2), dt.time(12), tzinfo=dt.UTC)
    times = []
    for i in range(requests + 50):
        rows = {
            "customer_id": rng.integers(0, entities, batch).tolist(),
            "terminal_id": rng.integers(0, entities, batch).tolist(),
            "amount": [42.0] * batch,
            "tx_datetime": [at] * batch,
        }
        began = time.perf_counter()
        reader.read(rows, at)
        if i >= 50:  # the first reads warm the registry cache and the connection
            times.append((time.perf_counter() - began) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


# ----------------------------------------------------------------------------- main


def _label(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k"


def run(args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="bench-features-"))
    figures: dict = {
        "history_days": args.history_days,
        "window_days": args.window_days,
        "repeats": args.repeats,
    }
    try:
        for rows in args.rows:
            pit = bench_pit(workdir, rows, args.history_days, args.window_days, args.repeats)
            n = _label(rows)
            figures[f"pit_{n}_feast_s"] = round(pit["feast_s"], 2)
            figures[f"pit_{n}_asof_s"] = round(pit["asof_s"], 2)
            figures[f"pit_{n}_ratio"] = round(pit["ratio"], 2)
            figures[f"pit_{n}_checksums_match"] = pit["checksums_match"]
        service_rows = min(args.rows)
        figures[f"pit_{_label(service_rows)}_feast_service_s"] = round(
            bench_on_demand(workdir, service_rows), 2
        )
        feast_sqlite = bench_online(workdir, min(args.online), feast_sqlite=True)
        figures[f"online_{_label(min(args.online))}_feast_sqlite_entities_per_s"] = round(
            feast_sqlite["entities_per_s"]
        )
        for entities in args.online:
            online = bench_online(workdir, entities)
            n = _label(entities)
            figures[f"online_{n}_s"] = round(online["seconds"], 2)
            figures[f"online_{n}_entities_per_s"] = round(online["entities_per_s"])
            if entities == min(args.online):
                for batch in (1, 100):
                    lat = bench_latency(online["settings"], entities, batch, args.requests)
                    figures[f"online_get_{batch}_p50_ms"] = round(lat["p50_ms"], 3)
                    figures[f"online_get_{batch}_p99_ms"] = round(lat["p99_ms"], 3)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return figures


def print_table(f: dict) -> None:
    print(
        f"\nFeature benchmark: {f['history_days']} days of feature history, training window "
        f"{f['window_days']} days, median of {f['repeats']}"
    )
    print(f"{'figure':<58}{'value':>16}")
    print("-" * 74)
    for key, value in f.items():
        if key in ("history_days", "window_days", "repeats"):
            continue
        shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
        print(f"{key:<58}{shown!s:>16}")
    print("\ngoals: pit_5m_ratio <= 2; online entities/s >= 50,000 (a day = both views);")
    print("       online_get_1_p99_ms <= 1; online_get_100_p99_ms <= 10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--online", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--history-days", type=int, default=40, help="feature days on disk")
    parser.add_argument("--window-days", type=int, default=10, help="days of transactions")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000, help="online reads per size")
    parser.add_argument("--json", type=Path, help="Write the figures to this JSON file.")
    args = parser.parse_args()
    figures = run(args)
    print_table(figures)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
