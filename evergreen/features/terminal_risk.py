"""Terminal risk: labelled transactions and their fraud share over 1, 7 and 30 days of labels.

The row of day D uses only labels that had landed by the end of D: for a window w, the
transactions whose labels landed on days (D - w, D] (the label feed's ``partition_date``), so a
late label counts from the day it lands and an early one from the day it lands, never before.
With the usual delay this is the handbook's "window ending a delay before", without assuming it.
Risk is frauds / labelled transactions, 0 when there are none. The query reads the label
partitions of (D - 31, D] and the transactions they can refer to (the label look-back bound).

A compromised terminal turns every payment into a fraud for weeks, so the labels landed so far
also describe the terminal's current fraud run, over those same landed labels:

* ``terminal_run_*``: the frauds after the terminal's newest legitimate labelled transaction (by
  transaction time): how many, the days from the first of them to the row's known-at time (D+1
  00:00), and their smallest and largest amount (a lone fraud of a large amount is more likely a
  stolen card's than the terminal's);
* over the transactions of days (D - 28, D] whose labels have landed: how many, how many frauds,
  their share, and the days from the first of those frauds to the known-at time (a run that
  began 28 days ago is ending); over labels landed in the last 3 days: how many and their share.

Ages and amounts are 0 where there is no such fraud (the counts tell those rows apart). Measured
in ``bench/handbook.py``: README, "Why ours ...".
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa

from evergreen.features.tables import WINDOWS, FeatureTable, with_timestamps

LONGEST = max(WINDOWS)
RUN_DAYS = 28  # the transaction-day window of the run's counts
RECENT_LANDED_DAYS = 3  # a landed-label window between the 1-day and 7-day ones


def _columns() -> dict[str, pa.DataType]:
    cols: dict[str, pa.DataType] = {}
    for w in WINDOWS:
        cols[f"terminal_n_tx_{w}d"] = pa.int64()
        cols[f"terminal_risk_{w}d"] = pa.float64()
    cols["terminal_run_frauds"] = pa.int64()
    cols["terminal_run_age_days"] = pa.float64()
    cols["terminal_run_min_amount"] = pa.float64()
    cols["terminal_run_max_amount"] = pa.float64()
    cols[f"terminal_labelled_tx_{RUN_DAYS}d"] = pa.int64()
    cols[f"terminal_frauds_tx_{RUN_DAYS}d"] = pa.int64()
    cols[f"terminal_risk_tx_{RUN_DAYS}d"] = pa.float64()
    cols[f"terminal_first_fraud_age_{RUN_DAYS}d"] = pa.float64()
    cols[f"terminal_n_tx_{RECENT_LANDED_DAYS}d"] = pa.int64()
    cols[f"terminal_risk_{RECENT_LANDED_DAYS}d"] = pa.float64()
    return cols


TERMINAL_RISK = FeatureTable(
    name="terminal_risk",
    entity="terminal",
    join_key="terminal_id",
    features=_columns(),
    description="Terminal's labelled transactions and fraud share, by the day their labels landed.",
)


def _days_before_known(at: str) -> str:
    """Days from ``at`` to the row's known-at time (D+1 00:00), 0 when ``at`` is null."""
    return f"coalesce(epoch(CAST($day + 1 AS TIMESTAMP) - {at}) / 86400.0, 0)"


def _landed_window(w: int) -> list[str]:
    """The terminal's labelled payments whose labels landed in the last ``w`` days, and
    their fraud share."""
    within = f"landed_on > $day - {w}"
    return [
        f"count(*) FILTER (WHERE {within}) AS terminal_n_tx_{w}d",
        f"coalesce(avg(label) FILTER (WHERE {within}), 0) AS terminal_risk_{w}d",
    ]


def _select_list() -> str:
    parts = [column for w in WINDOWS for column in _landed_window(w)]
    run = "label = 1 AND (legit_at IS NULL OR tx_datetime > legit_at)"
    parts += [
        f"count(*) FILTER (WHERE {run}) AS terminal_run_frauds",
        f"{_days_before_known(f'min(tx_datetime) FILTER (WHERE {run})')} AS terminal_run_age_days",
        f"coalesce(min(amount) FILTER (WHERE {run}), 0) AS terminal_run_min_amount",
        f"coalesce(max(amount) FILTER (WHERE {run}), 0) AS terminal_run_max_amount",
    ]
    recent, n = f"tx_day > $day - {RUN_DAYS}", RUN_DAYS
    first_fraud = f"min(tx_datetime) FILTER (WHERE {recent} AND label = 1)"
    parts += [
        f"count(*) FILTER (WHERE {recent}) AS terminal_labelled_tx_{n}d",
        f"count(*) FILTER (WHERE {recent} AND label = 1) AS terminal_frauds_tx_{n}d",
        f"coalesce(avg(label) FILTER (WHERE {recent}), 0) AS terminal_risk_tx_{n}d",
        f"{_days_before_known(first_fraud)} AS terminal_first_fraud_age_{n}d",
    ]
    parts += _landed_window(RECENT_LANDED_DAYS)
    return ",\n    ".join(parts)


TERMINAL_RISK_SQL = f"""
WITH landed AS (
    SELECT transaction_id, label, partition_date AS landed_on
    FROM raw_labels
    WHERE partition_date > $day - {LONGEST + 1} AND partition_date <= $day
),
labelled AS (
    SELECT t.terminal_id, l.landed_on, l.label, t.tx_datetime, t.amount,
           t.partition_date AS tx_day
    FROM landed AS l
    JOIN raw_transactions AS t USING (transaction_id)
    WHERE t.partition_date > $day - {LONGEST + 1} - $lookback AND t.partition_date <= $day
),
newest_legit AS (  -- where each terminal's current fraud run begins after
    SELECT terminal_id, max(tx_datetime) FILTER (WHERE label = 0) AS legit_at
    FROM labelled
    GROUP BY terminal_id
)
SELECT
    terminal_id,
    {_select_list()}
FROM labelled
JOIN newest_legit USING (terminal_id)
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
