"""The DuckDB warehouse: one file, one writer at a time, tables created on first use."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from evergreen.ingest.contracts import FEEDS, PROVENANCE_COLUMNS

_LOCK_WAIT_S = 120.0

INGEST_LOG_DDL = """
CREATE TABLE IF NOT EXISTS ingest_log (
    feed VARCHAR NOT NULL,
    partition_date DATE NOT NULL,
    ingested_at TIMESTAMP NOT NULL,
    files_landed INTEGER NOT NULL,
    files_quarantined INTEGER NOT NULL,
    rows_landed BIGINT NOT NULL,
    rows_delivered BIGINT NOT NULL, -- landed less exact copies of another file: what volume judges
    rows_loaded BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    data_version VARCHAR NOT NULL
)
"""


def _raw_table_ddl(feed: str) -> str:
    contract = FEEDS[feed]
    cols = [*contract.columns, *PROVENANCE_COLUMNS]
    body = ",\n    ".join(f"{c.name} {c.type}" for c in cols)
    return f"CREATE TABLE IF NOT EXISTS {contract.table} (\n    {body}\n)"


def _is_lock_conflict(exc: duckdb.Error) -> bool:
    return "lock" in str(exc).lower()


@contextmanager
def connect(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse, waiting while another process holds DuckDB's single-writer lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if read_only and not path.exists():
        read_only = False  # a read-only open of a missing file fails; create it empty instead
    deadline = time.monotonic() + _LOCK_WAIT_S
    delay = 0.05
    while True:
        try:
            conn = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if not _is_lock_conflict(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    try:
        if not read_only:
            create_tables(conn)
        yield conn
    finally:
        conn.close()


# Added after the first warehouses were made: files and bytes reconcile too, and unreadable
# files are counted as files whose rows are unknown.
INGEST_LOG_ADDED = (
    "bytes_landed BIGINT",
    "bytes_quarantined BIGINT",
    "files_rows_unknown INTEGER",
)


def create_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the raw tables and the ingest log if they do not exist."""
    for feed in FEEDS:
        conn.execute(_raw_table_ddl(feed))
    conn.execute(INGEST_LOG_DDL)
    for column in INGEST_LOG_ADDED:
        conn.execute(f"ALTER TABLE ingest_log ADD COLUMN IF NOT EXISTS {column}")
