"""Re-verify a loaded partition in the warehouse: what the checks assert about stored data."""

from __future__ import annotations

import datetime as dt

import duckdb

from evergreen.ingest.contracts import LABELS, FeedContract


def verify_loaded(conn: duckdb.DuckDBPyConnection, contract: FeedContract, day: dt.date) -> dict:
    """Counts of bad rows in the stored partition; all must be zero after a correct ingest."""
    nulls = " OR ".join(f"{k} IS NULL" for k in contract.keys)
    if contract is LABELS:
        ranges = "label NOT IN (0, 1)"
    else:
        ranges = (
            "amount < 0 OR NOT isfinite(amount) OR tx_datetime < ?::DATE "
            "OR tx_datetime >= ?::DATE + 1"
        )
    params = [] if contract is LABELS else [day, day]
    row = conn.execute(
        f"SELECT count(*) FILTER (WHERE {nulls}), count(*) FILTER (WHERE {ranges}), "
        "count(transaction_id) - count(DISTINCT transaction_id) "
        f"FROM {contract.table} WHERE partition_date = ?",
        [*params, day],
    ).fetchone()
    return {"null_keys": row[0], "out_of_range": row[1], "duplicate_ids": row[2]}


def label_share(conn: duckdb.DuckDBPyConnection, day: dt.date) -> float | None:
    """Share of frauds among the labels loaded for ``day``; None when there are none."""
    share = conn.execute(
        "SELECT avg(label) FROM raw_labels WHERE partition_date = ?", [day]
    ).fetchone()[0]
    return None if share is None else float(share)
