"""The DuckDB warehouse: one file, one writer at a time, tables created on first use.

On the cluster profile the raw tables and the ingest log are not in that file (one writer per
file cannot take two hosts): each raw partition is one Parquet file on the shared store
(``settings.raw_dir``), written by the one step that makes it under a temporary name of its host,
process and a random part and renamed into place, and each ingest's log row is a file of its
own. Every connection (``warehouse``) sees them as temporary views over those files, so two hosts
write different partitions at once with no lock between them, and a reader sees a partition's old
file or its new one, never half of one.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from evergreen.ingest.contracts import FEEDS, PROVENANCE_COLUMNS

if TYPE_CHECKING:
    from evergreen.settings import EvergreenSettings

_LOCK_WAIT_S = 120.0

INGEST_LOG = "ingest_log"
INGEST_LOG_DDL = """
CREATE {temp}TABLE IF NOT EXISTS {name} (
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


def _raw_table_ddl(feed: str, name: str | None = None, temp: bool = False) -> str:
    contract = FEEDS[feed]
    cols = [*contract.columns, *PROVENANCE_COLUMNS]
    body = ",\n    ".join(f"{c.name} {c.type}" for c in cols)
    kind = "TEMP TABLE" if temp else "TABLE"
    return f"CREATE {kind} IF NOT EXISTS {name or contract.table} (\n    {body}\n)"


def _is_lock_conflict(exc: duckdb.Error) -> bool:
    return "lock" in str(exc).lower()


@contextmanager
def connect(
    path: Path, read_only: bool = False, raw_tables: bool = True
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse, waiting while another process holds DuckDB's single-writer lock
    (``raw_tables=False``: the raw tables and ingest log are elsewhere, not created here)."""
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
        if not read_only and raw_tables:
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


def create_tables(conn: duckdb.DuckDBPyConnection, prefix: str = "", temp: bool = False) -> None:
    """Create the raw tables and the ingest log if they do not exist (``prefix``, ``temp``:
    temporary tables of the same columns, named ``PREFIX<table>``)."""
    for feed in FEEDS:
        conn.execute(_raw_table_ddl(feed, prefix + FEEDS[feed].table, temp))
    log = prefix + INGEST_LOG
    conn.execute(INGEST_LOG_DDL.format(temp="TEMP " if temp else "", name=log))
    for column in INGEST_LOG_ADDED:
        conn.execute(f"ALTER TABLE {log} ADD COLUMN IF NOT EXISTS {column}")


# The cluster profile: the raw tables as views over the shared store's files.

STAGED = "_staged_"  # a connection's rows of a raw table not yet in a file: typed, mostly empty
RAW_TABLES = (*(c.table for c in FEEDS.values()), INGEST_LOG)


@contextmanager
def warehouse(
    settings: EvergreenSettings, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The warehouse of ``settings``: its home's DuckDB file; on the cluster profile with the
    raw tables and the ingest log as views over the shared store's partition files."""
    cluster = settings.is_cluster
    with connect(settings.warehouse_path, read_only, raw_tables=not cluster) as conn:
        if cluster:
            attach_raw_files(conn, settings.raw_dir)
        yield conn


@contextmanager
def ingest_warehouse(settings: EvergreenSettings) -> Iterator[duckdb.DuckDBPyConnection]:
    """Where one partition's ingest reads and writes: the warehouse file; on the cluster
    profile a connection of its own in memory over the shared store's files, so that no
    process waits for another's lock (``replace_partition`` and ``append_log`` write)."""
    if not settings.is_cluster:
        with connect(settings.warehouse_path) as conn:
            yield conn
        return
    conn = duckdb.connect()
    try:
        attach_raw_files(conn, settings.raw_dir)
        yield conn
    finally:
        conn.close()


def attach_raw_files(conn: duckdb.DuckDBPyConnection, raw_dir: Path) -> None:
    """(Re)define each raw table and the ingest log as a temporary view over its files under
    ``raw_dir`` (DuckDB expands the glob at every query, so a file renamed into place later
    is read); a table with no file yet is empty, with its columns and types."""
    create_tables(conn, STAGED, temp=True)
    for table in RAW_TABLES:
        typed = f"SELECT * FROM {STAGED}{table} WHERE false"
        files = _raw_files(table)
        if next(raw_dir.glob(files), None):  # read_parquet refuses a glob that matches nothing
            typed += (
                f" UNION ALL BY NAME SELECT * FROM read_parquet('{raw_dir / files}', "
                "union_by_name = true, hive_partitioning = false)"
            )
        conn.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS {typed}")


def _raw_files(table: str) -> str:
    """A table's files under the raw folder, as a glob: ``TABLE/date=D/part-0.parquet``, and
    for the log ``ingest_log/FEED/date=D/STAMP.parquet``. A writer's temporary ends in .tmp."""
    return f"{table}/*/*/*.parquet" if table == INGEST_LOG else f"{table}/date=*/*.parquet"


def partition_file(raw_dir: Path, table: str, day: dt.date) -> Path:
    """The one file of a raw table's partition on the cluster profile."""
    return raw_dir / table / f"date={day.isoformat()}" / "part-0.parquet"


def replace_partition(
    conn: duckdb.DuckDBPyConnection,
    settings: EvergreenSettings,
    table: str,
    day: dt.date,
    insert: Callable[[str], None],
) -> None:
    """Replace one day of a raw table with what ``insert(target_table)`` inserts: in the
    warehouse file in one transaction; on the cluster profile as the day's one file, written
    under a temporary name and renamed over the old one (a reader sees either, whole)."""
    if not settings.is_cluster:
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(f"DELETE FROM {table} WHERE partition_date = ?", [day])
            insert(table)
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        return
    _write_staged(
        conn, settings.raw_dir, table, insert, partition_file(settings.raw_dir, table, day)
    )


def append_log(
    conn: duckdb.DuckDBPyConnection,
    settings: EvergreenSettings,
    feed: str,
    day: dt.date,
    insert: Callable[[str], None],
) -> None:
    """Append what ``insert(target_table)`` inserts to the ingest log: a row of the table, or
    on the cluster profile a file of its own (its name: the time, host, process, a random part)
    that no other ingest writes."""
    if not settings.is_cluster:
        insert(INGEST_LOG)
        return
    from evergreen.features.tables import temporary_suffix

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    name = f"{stamp}.{temporary_suffix().removesuffix('.tmp')}.parquet"
    folder = settings.raw_dir / INGEST_LOG / feed / f"date={day.isoformat()}"
    _write_staged(conn, settings.raw_dir, INGEST_LOG, insert, folder / name)


def _write_staged(
    conn: duckdb.DuckDBPyConnection,
    raw_dir: Path,
    table: str,
    insert: Callable[[str], None],
    path: Path,
) -> None:
    from evergreen.features.tables import write_table

    staged = STAGED + table
    conn.execute(f"DELETE FROM {staged}")
    insert(staged)
    write_table(conn.sql(f"SELECT * FROM {staged}").to_arrow_table(), path)
    conn.execute(f"DELETE FROM {staged}")
    attach_raw_files(conn, raw_dir)  # the first file of a table turns its view to the files
