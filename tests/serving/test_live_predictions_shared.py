"""``live_predictions`` on the cluster profile: a day loaded on one host is a version file on
the shared store (as a raw partition is), read by a connection on any other host; loading it
again replaces it; no home's warehouse file holds it."""

from __future__ import annotations

import datetime as dt

import duckdb

from evergreen.serving.live_predictions import load_day
from evergreen.serving.prediction_log import PredictionLog
from evergreen.warehouse import warehouse
from tests.conftest import cluster_settings

DAY = dt.date(2018, 4, 20)


def _record(i: int, model: str) -> dict:
    return {
        "request_id": f"r{i}",
        "predicted_at": f"{DAY.isoformat()}T12:00:00",
        "model_version": model,
        "transaction_id": i,
        "customer_id": i % 7,
        "terminal_id": i % 11,
        "amount": 10.0 + i,
        "tx_datetime": f"{DAY.isoformat()}T11:{i % 60:02d}:00",
        "region": "north",
        "channel": "pos",
        "card_type": "debit",
        "features": {"customer_n_tx_30d": i},
        "features_missing": [],
        "fraud_probability": 0.01 * (i % 100),
        "threshold": 0.5,
        "decision": i % 100 >= 50,
    }


def _count(settings) -> tuple[int, int]:
    with warehouse(settings, read_only=True) as conn:
        return conn.execute(
            "SELECT count(*), sum((features->>'$.customer_n_tx_30d')::INT) FROM live_predictions "
            "WHERE partition_date = ?",
            [DAY],
        ).fetchone()


def test_a_day_loaded_on_one_host_is_read_on_another(tmp_path):
    shared = tmp_path / "shared"
    loader, reader = (cluster_settings(tmp_path / h, shared) for h in ("w1", "w2"))
    # Two replicas (processes on two hosts) logged the day, each to a file of its own.
    for replica, ids in (("h1-1", range(0, 30)), ("h2-2", range(30, 50))):
        log = PredictionLog(loader.predictions_dir, replica=replica)
        log.append([_record(i, "m:1") for i in ids])
        log.close()
    assert loader.predictions_dir.is_relative_to(shared)

    with warehouse(loader) as conn:
        first = load_day(conn, loader, DAY)
    assert (first.rows, len(first.files), first.by_model) == (50, 2, {"m:1": 50})
    assert _count(reader) == (50, sum(range(50)))  # another host's connection sees it whole

    log = PredictionLog(loader.predictions_dir, replica="h2-3")  # a late replica's lines
    log.append([_record(i, "m:2") for i in range(50, 60)])
    log.close()
    with warehouse(loader) as conn:
        again = load_day(conn, loader, DAY)
    assert again.rows == 60 and again.by_model == {"m:1": 50, "m:2": 10}
    assert _count(reader) == (60, sum(range(60)))  # replaced by the newest version, not added
    versions = sorted((loader.raw_dir / "live_predictions").rglob("part-*.parquet"))
    assert [p.parent.name for p in versions] == [f"date={DAY}"] * 2
    for home in (loader, reader):  # nothing of it in a home's warehouse file
        with duckdb.connect(str(home.warehouse_path), read_only=True) as conn:
            tables = {
                t for (t,) in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            }
        assert "live_predictions" not in tables
