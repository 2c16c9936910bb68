"""Request-time aggregates: the card's and the terminal's transactions up to the moment of each one.

One definition, two paths. The windows (``CARD_WINDOWS``, ``TERMINAL_WINDOWS``) and the
features below are defined once here; ``offline_sql`` renders them as DuckDB window functions
over the warehouse (the training set) and ``card_features`` / ``terminal_features`` compute them
in Python from the online state's events (serving). Both apply the same rule:

    the events counted for transaction x of card c (terminal t) at time T are c's (t's)
    transactions e with  T - w < t_e < T  (microseconds), x itself and any other transaction
    at exactly T excluded.

Strictly before T, so arrival order does not matter: a transaction that reaches the online state
before an earlier one (another replica, a retry, a batch reconciliation) is not counted for it,
and a retried request reads what its first attempt read. Per card and window w in 1 h, 24 h,
7 d, 30 d: number of transactions, total amount, mean amount (None when empty) and the
transaction's amount over that mean (None when empty or zero); seconds since the card's previous
transaction within the longest window (None when there is none); over 7 d and 30 d the largest
earlier amount and this amount over it (None when empty or zero), over 30 d the amounts' population
standard deviation and this amount's z-score against it (None when empty; the z-score also when the
deviation is 0). Per terminal: transactions over
1 h and 24 h. A card or terminal never seen has empty windows: counts 0, sums 0.0, the rest None.

Data time. The online state keeps its newest event time (``data time``, the data's clock, not
the wall clock: a replayed day is in the past). A request more than ``MAX_AHEAD`` after it or
``MAX_BEHIND`` before it is refused (400 naming ``tx_datetime``): a wrong year or a unit error
would otherwise poison the windows of every later transaction. The state therefore keeps each
entity's events for ``RETENTION`` = longest window + both bounds, and no longer.

No Feast, DuckDB or SQLite import here: the serving path, the assets and the benchmark share it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

US = 1_000_000  # microseconds per second: event times are integer epoch microseconds
CARD_WINDOWS: dict[str, int] = {"1h": 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
TERMINAL_WINDOWS: dict[str, int] = {"1h": 3600, "24h": 86_400}
# The card's largest earlier amount over these windows, and its spread over SPREAD_WINDOW: a
# stolen card's payments are several times the holder's usual ones (bench/handbook.py: AP +0.01
# to +0.04 over the means alone, seeds 0-1).
MAX_WINDOWS = ("7d", "30d")
SPREAD_WINDOW = "30d"
LONGEST_S = max(CARD_WINDOWS.values())
MAX_AHEAD = dt.timedelta(days=2)
MAX_BEHIND = dt.timedelta(days=2)
RETENTION_S = LONGEST_S + int((MAX_AHEAD + MAX_BEHIND).total_seconds())

CARD_VIEW = "card_activity"
TERMINAL_VIEW = "terminal_activity"
# Tag on the Feast views computed here (not read from a row of the online store).
COMPUTED_TAG = "evergreen.computed"
COMPUTED = "request-time"

SECONDS_SINCE_PREVIOUS = "card_seconds_since_previous"


def card_feature_types() -> dict[str, str]:
    """The card view's features and their types (``int`` or ``float``), in column order."""
    types: dict[str, str] = {}
    for w in CARD_WINDOWS:
        types[f"card_tx_count_{w}"] = "int"
        types[f"card_amount_sum_{w}"] = "float"
        types[f"card_amount_mean_{w}"] = "float"
        types[f"card_amount_to_mean_{w}"] = "float"
    for w in MAX_WINDOWS:
        types[f"card_amount_max_{w}"] = "float"
        types[f"card_amount_to_max_{w}"] = "float"
    types[f"card_amount_std_{SPREAD_WINDOW}"] = "float"
    types[f"card_amount_zscore_{SPREAD_WINDOW}"] = "float"
    types[SECONDS_SINCE_PREVIOUS] = "float"
    return types


def terminal_feature_types() -> dict[str, str]:
    """The terminal view's features and their types."""
    return {f"terminal_tx_count_{w}": "int" for w in TERMINAL_WINDOWS}


CARD_FEATURES = list(card_feature_types())
TERMINAL_FEATURES = list(terminal_feature_types())
REALTIME_FEATURES = [*CARD_FEATURES, *TERMINAL_FEATURES]


def micros(ts: dt.datetime) -> int:
    """Epoch microseconds of a UTC instant (a naive time is UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    return (ts - _EPOCH) // dt.timedelta(microseconds=1)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def from_micros(us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=us)


# ----------------------------------------------------------------------------- online (Python)


def card_features(events: Sequence[tuple[int, float]], at_us: int, amount: float) -> list[Any]:
    """The card view's values (``CARD_FEATURES`` order) for a transaction of ``amount`` at
    ``at_us``, from the card's events ``(time_us, amount)`` with ``at_us - LONGEST < time <
    at_us`` (the state's query; any order)."""
    values: list[Any] = []
    inside: dict[str, list[float]] = {}
    for w, seconds in CARD_WINDOWS.items():
        low = at_us - seconds * US
        inside[w] = [a for t, a in events if low < t < at_us]
        count, total = len(inside[w]), sum(inside[w], 0.0)
        mean = total / count if count else None
        values += [count, total, mean, amount / mean if mean else None]
    for w in MAX_WINDOWS:
        largest = max(inside[w], default=None)
        values += [largest, amount / largest if largest else None]
    values += _spread(inside[SPREAD_WINDOW], amount)
    before = [t for t, _ in events if at_us - LONGEST_S * US < t < at_us]
    values.append((at_us - max(before)) / US if before else None)
    return values


def _spread(amounts: list[float], amount: float) -> list[float | None]:
    """Population standard deviation of ``amounts`` and ``amount``'s z-score against them."""
    if not amounts:
        return [None, None]
    mean = sum(amounts, 0.0) / len(amounts)
    # ``d * d``, not ``d ** 2``: a float product past the largest float is inf, as DuckDB's
    # ``stddev_pop`` gives, where ``**`` raises OverflowError (a 1e200 amount was a 500).
    std = math.sqrt(sum((a - mean) * (a - mean) for a in amounts) / len(amounts))
    return [std, (amount - mean) / std if std > 0 else None]


def terminal_features(event_times: Sequence[int], at_us: int) -> list[int]:
    """The terminal view's values for a transaction at ``at_us``, from its terminal's event
    times within the longest terminal window before it."""
    return [
        sum(1 for t in event_times if at_us - seconds * US < t < at_us)
        for seconds in TERMINAL_WINDOWS.values()
    ]


def out_of_bounds(at: dt.datetime, data_time: dt.datetime | None) -> str | None:
    """Why a transaction at ``at`` would poison the windows, or None when it is within the
    bounds of the data time (no data time yet: anything goes)."""
    if data_time is None:
        return None
    if at > data_time + MAX_AHEAD:
        return (
            f"tx_datetime {at.isoformat()} is more than {_span(MAX_AHEAD)} after the data's "
            f"current time {data_time.isoformat()} (the newest transaction the online state holds)"
        )
    if at < data_time - MAX_BEHIND:
        return (
            f"tx_datetime {at.isoformat()} is more than {_span(MAX_BEHIND)} before the data's "
            f"current time {data_time.isoformat()} (the newest transaction the online state holds)"
        )
    return None


def _span(delta: dt.timedelta) -> str:
    days = delta.total_seconds() / 86_400
    return f"{days:g} day{'s' if days != 1 else ''}"


# ----------------------------------------------------------------------------- offline (SQL)


def _frame(seconds: int) -> str:
    # ORDER BY integer microseconds: (T - w, T) is w*1e6 - 1 preceding up to 1 preceding.
    return f"RANGE BETWEEN {seconds * US - 1} PRECEDING AND 1 PRECEDING"


def offline_sql(events: str) -> str:
    """DuckDB SQL computing every request-time feature of each row of ``events`` (a relation
    with ``transaction_id, customer_id, terminal_id, amount, tx_us``) from the other rows."""
    selects = []
    for w in CARD_WINDOWS:
        count, total = f"count(*) OVER card_{w}", f"coalesce(sum(amount) OVER card_{w}, 0.0)"
        mean = f"CASE WHEN {count} > 0 THEN {total} / {count} END"
        selects += [
            f"{count} AS card_tx_count_{w}",
            f"{total} AS card_amount_sum_{w}",
            f"{mean} AS card_amount_mean_{w}",
            f"CASE WHEN {mean} > 0 THEN amount / ({mean}) END AS card_amount_to_mean_{w}",
        ]
    for w in MAX_WINDOWS:
        largest = f"max(amount) OVER card_{w}"
        selects += [
            f"{largest} AS card_amount_max_{w}",
            f"CASE WHEN {largest} > 0 THEN amount / ({largest}) END AS card_amount_to_max_{w}",
        ]
    w = SPREAD_WINDOW
    std = f"stddev_pop(amount) OVER card_{w}"
    selects += [
        f"{std} AS card_amount_std_{w}",
        f"CASE WHEN {std} > 0 THEN (amount - avg(amount) OVER card_{w}) / ({std}) END "
        f"AS card_amount_zscore_{w}",
    ]
    longest = next(w for w, s in CARD_WINDOWS.items() if s == LONGEST_S)
    selects.append(
        f"(tx_us - max(tx_us) OVER card_{longest}) / {float(US)!r} AS {SECONDS_SINCE_PREVIOUS}"
    )
    selects += [f"count(*) OVER terminal_{w} AS terminal_tx_count_{w}" for w in TERMINAL_WINDOWS]
    windows = [
        f"card_{w} AS (PARTITION BY customer_id ORDER BY tx_us {_frame(s)})"
        for w, s in CARD_WINDOWS.items()
    ]
    windows += [
        f"terminal_{w} AS (PARTITION BY terminal_id ORDER BY tx_us {_frame(s)})"
        for w, s in TERMINAL_WINDOWS.items()
    ]
    return f"SELECT transaction_id, {', '.join(selects)} FROM {events} WINDOW {', '.join(windows)}"


# The warehouse's transactions a training window needs: its days and the longest window before.
WAREHOUSE_EVENTS_SQL = """
SELECT transaction_id, customer_id, terminal_id, amount, epoch_us(tx_datetime) AS tx_us
FROM raw_transactions
WHERE partition_date >= $first_day AND partition_date <= $last_day
"""


def training_features(conn: Any, transaction_ids: Any, first_day: dt.date, last_day: dt.date):
    """The request-time features of the transactions ``transaction_ids`` (an Arrow array or
    column) of days ``first_day..last_day``, computed from the warehouse (a DuckDB
    connection) exactly as the online state would have held them: an Arrow table with
    ``transaction_id`` and ``REALTIME_FEATURES``, ordered by transaction id."""
    import pyarrow as pa

    wanted = pa.table({"transaction_id": pa.array(transaction_ids, pa.int64())})
    conn.register("_realtime_wanted", wanted)
    try:
        # One day more than the longest window: a window reaching back into that day needs it.
        params = {
            "first_day": first_day - dt.timedelta(seconds=LONGEST_S) - dt.timedelta(days=1),
            "last_day": last_day,
        }
        sql = (
            f"WITH events AS ({WAREHOUSE_EVENTS_SQL}) "
            f"SELECT f.* FROM ({offline_sql('events')}) AS f "
            "SEMI JOIN _realtime_wanted AS w USING (transaction_id) ORDER BY f.transaction_id"
        )
        return conn.sql(sql, params=params).to_arrow_table()
    finally:
        conn.unregister("_realtime_wanted")


def is_realtime(view: Any) -> bool:
    """Whether a Feast feature view is one of the request-time views computed here."""
    return (getattr(view, "tags", None) or {}).get(COMPUTED_TAG) == COMPUTED
