"""The ``live_predictions`` warehouse table: a day of the prediction log, loaded idempotently.

Every replica's files of the day (``<predictions_dir>/date=D/*.jsonl``) are read by DuckDB in
one statement; the day's rows are deleted and inserted in one transaction (on the cluster
profile: written as the day's next version on the shared store), so loading a day twice gives
the same table, and a reader never sees half a day. A line a replica was still
writing (or cut short by a crash) is skipped and counted, never loaded half.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from evergreen.serving.live_schema import LOG_COLUMNS, REQUIRED, TABLE, table_ddl
from evergreen.serving.prediction_log import LOG_GLOB, day_dir
from evergreen.settings import EvergreenSettings
from evergreen.warehouse import replace_partition

DDL = table_ddl()


@dataclass
class DayLoad:
    """What loading one day found."""

    day: dt.date
    files: list[Path]
    lines: int
    rows: int
    by_model: dict[str, int] = field(default_factory=dict)
    score: dict[str, float] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        return self.lines - self.rows


def _complete_lines(files: list[Path]) -> int:
    return sum(path.read_bytes().count(b"\n") for path in files)


def load_day(conn: duckdb.DuckDBPyConnection, settings: EvergreenSettings, day: dt.date) -> DayLoad:
    """Replace the day's rows of ``live_predictions`` with the day's log files: in the
    warehouse file in one transaction; on the cluster profile as the day's next version on the
    shared store, as a raw partition is (``evergreen.warehouse.replace_partition``), so every
    host's connection reads it."""
    files = sorted(day_dir(settings.predictions_dir, day).glob(LOG_GLOB))
    load = DayLoad(day, files, _complete_lines(files), 0)
    selected = ", ".join(LOG_COLUMNS)
    complete = " AND ".join(f"{name} IS NOT NULL" for name in REQUIRED)

    def insert(target: str) -> None:
        if files:
            conn.execute(
                f"INSERT INTO {target} SELECT $day::DATE, {selected}, filename "
                "FROM read_json($files, format = 'newline_delimited', columns = $columns, "
                f"filename = true, ignore_errors = true) WHERE {complete}",
                {"day": day, "files": [str(f) for f in files], "columns": LOG_COLUMNS},
            )

    if not settings.is_cluster:
        conn.execute(DDL)
    replace_partition(conn, settings, TABLE, day, insert)
    _summarise(conn, load)
    return load


def _summarise(conn: duckdb.DuckDBPyConnection, load: DayLoad) -> None:
    params = {"day": load.day}
    where = f"FROM {TABLE} WHERE partition_date = $day"
    load.by_model = dict(
        conn.execute(
            f"SELECT model_version, count(*) {where} GROUP BY 1 ORDER BY 1", params
        ).fetchall()
    )
    load.rows = sum(load.by_model.values())
    if load.rows:
        mean, p50, p99, flagged, missing = conn.execute(
            "SELECT avg(fraud_probability), quantile_cont(fraud_probability, 0.5), "
            "quantile_cont(fraud_probability, 0.99), avg(decision::INT), "
            f"avg((len(features_missing) > 0)::INT) {where}",
            params,
        ).fetchone()
        load.score = {
            "mean": mean,
            "p50": p50,
            "p99": p99,
            "flagged_share": flagged,
            "features_missing_share": missing,
        }
