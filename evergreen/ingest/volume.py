"""Volume check: a day's delivered rows against an adaptive band from the trailing days.

It judges rows landed, not loaded: a quarantined file is the other checks' finding, while a short
or empty delivery is this one's.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass

import duckdb

from evergreen.settings import EvergreenSettings


@dataclass(frozen=True)
class VolumeVerdict:
    """A day's volume, the band it was held to, and the verdict in words."""

    rows: int
    history_days: int
    median: float | None
    low: float | None
    high: float | None
    passed: bool
    message: str


def band(history: list[int], mads: float, min_fraction: float) -> tuple[float, float, float]:
    """Median and the band around it: wide enough for noise (MAD) and never below a floor share."""
    median = statistics.median(history)
    mad = statistics.median(abs(h - median) for h in history)
    half = max(mads * 1.4826 * mad, min_fraction * median)
    return median, median - half, median + half


def _trailing(conn: duckdb.DuckDBPyConnection, feed: str, day: dt.date, days: int) -> list[int]:
    """Latest landed row count of each non-empty trailing day (empty days are not a baseline)."""
    rows = conn.execute(
        "SELECT partition_date, arg_max(rows_delivered, ingested_at) AS n FROM ingest_log "
        "WHERE feed = ? AND partition_date >= ? AND partition_date < ? GROUP BY 1",
        [feed, day - dt.timedelta(days=days), day],
    ).fetchall()
    return [n for _, n in sorted(rows) if n > 0]


def volume_verdict(
    conn: duckdb.DuckDBPyConnection, feed: str, day: dt.date, rows: int, s: EvergreenSettings
) -> VolumeVerdict:
    """Hold ``rows`` landed for ``day`` to the band of the trailing days."""
    history = _trailing(conn, feed, day, s.volume_history_days)
    if len(history) < s.volume_min_history_days:
        msg = (
            f"{rows:,} rows; not judged yet: {len(history)} of "
            f"{s.volume_min_history_days} days of history needed for a band"
        )
        return VolumeVerdict(rows, len(history), None, None, None, True, msg)
    median, low, high = band(history, s.volume_band_mads, s.volume_band_min_fraction)
    passed = low <= rows <= high
    where = "inside" if passed else ("below" if rows < low else "above")
    msg = (
        f"{rows:,} rows landed, {where} the expected band {low:,.0f} to {high:,.0f} "
        f"(median {median:,.0f} of the last {len(history)} days)"
    )
    if rows == 0:
        msg = (
            f"no rows landed for {day}; the last {len(history)} days had a median of {median:,.0f}"
        )
    return VolumeVerdict(rows, len(history), median, low, high, passed, msg)
