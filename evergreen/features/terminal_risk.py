"""Terminal risk: labelled transactions and their fraud share over 1, 7 and 30 days of labels.

The row of day D uses only labels that had landed by the end of D: for a window w, the
transactions whose labels landed on days (D - w, D] (the label feed's ``partition_date``), so a
late label counts from the day it lands and an early one from the day it lands, never before.
With the usual delay this is the handbook's "window ending a delay before", without assuming it.
Risk is frauds / labelled transactions, 0 when there are none. The query reads the label
partitions of (D - 31, D] and the transactions they can refer to (the label look-back bound).
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
        cols[f"terminal_n_tx_{w}d"] = pa.int64()
        cols[f"terminal_risk_{w}d"] = pa.float64()
    return cols


TERMINAL_RISK = FeatureTable(
    name="terminal_risk",
    entity="terminal",
    join_key="terminal_id",
    features=_columns(),
    description="Terminal's labelled transactions and fraud share, by the day their labels landed.",
)


def _select_list() -> str:
    parts = []
    for w in WINDOWS:
        within = f"landed_on > $day - {w}"
        parts.append(f"count(*) FILTER (WHERE {within}) AS terminal_n_tx_{w}d")
        parts.append(f"coalesce(avg(label) FILTER (WHERE {within}), 0) AS terminal_risk_{w}d")
    return ",\n    ".join(parts)


TERMINAL_RISK_SQL = f"""
WITH landed AS (
    SELECT transaction_id, label, partition_date AS landed_on
    FROM raw_labels
    WHERE partition_date > $day - {LONGEST + 1} AND partition_date <= $day
),
labelled AS (
    SELECT t.terminal_id, l.landed_on, l.label
    FROM landed AS l
    JOIN raw_transactions AS t USING (transaction_id)
    WHERE t.partition_date > $day - {LONGEST + 1} - $lookback AND t.partition_date <= $day
)
SELECT
    terminal_id,
    {_select_list()}
FROM labelled
GROUP BY terminal_id
ORDER BY terminal_id
"""


def terminal_risk_rows(
    conn: duckdb.DuckDBPyConnection, day: dt.date, created_at: dt.datetime, lookback_days: int
) -> pa.Table:
    """The terminal_risk rows of ``day`` (labels landed by its end), with timestamps."""
    params = {"day": day, "lookback": lookback_days}
    rows = conn.sql(TERMINAL_RISK_SQL, params=params).to_arrow_table()
    return with_timestamps(TERMINAL_RISK, rows, day, created_at)
