"""Customer spending: number of transactions, average (and spread of) amounts over 1, 7, 30 days.

The row of day D covers the customer's transactions of days (D - w, D] for each window w. It reads
only the raw partitions of (D - 31, D]: a customer whose last transaction just left the 30-day
window gets one last row of zeros (so the online store forgets its old values), then no rows.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa

from evergreen.features.tables import WINDOWS, FeatureTable, with_timestamps

LONGEST = max(WINDOWS)


def _columns() -> dict[str, pa.DataType]:
    cols: dict[str, pa.DataType] = {}
    for w in WINDOWS:
        cols[f"customer_n_tx_{w}d"] = pa.int64()
        cols[f"customer_avg_amount_{w}d"] = pa.float64()
    cols[f"customer_std_amount_{LONGEST}d"] = pa.float64()
    return cols


CUSTOMER_SPENDING = FeatureTable(
    name="customer_spending",
    entity="customer",
    join_key="customer_id",
    features=_columns(),
    description="Card holder's transactions and amounts over the last 1, 7 and 30 days.",
)


def _select_list() -> str:
    parts = []
    for w in WINDOWS:
        within = f"partition_date > $day - {w}"
        parts.append(f"count(*) FILTER (WHERE {within}) AS customer_n_tx_{w}d")
        parts.append(
            f"coalesce(avg(amount) FILTER (WHERE {within}), 0) AS customer_avg_amount_{w}d"
        )
    within = f"partition_date > $day - {LONGEST}"
    parts.append(
        f"coalesce(stddev_pop(amount) FILTER (WHERE {within}), 0) AS customer_std_amount_{LONGEST}d"
    )
    return ",\n    ".join(parts)


CUSTOMER_SPENDING_SQL = f"""
SELECT
    customer_id,
    {_select_list()}
FROM raw_transactions
WHERE partition_date > $day - {LONGEST + 1} AND partition_date <= $day
GROUP BY customer_id
ORDER BY customer_id
"""


def customer_spending_rows(
    conn: duckdb.DuckDBPyConnection, day: dt.date, created_at: dt.datetime
) -> pa.Table:
    """The customer_spending rows of ``day``, with event and created timestamps."""
    rows = conn.sql(CUSTOMER_SPENDING_SQL, params={"day": day}).to_arrow_table()
    return with_timestamps(CUSTOMER_SPENDING, rows, day, created_at)
