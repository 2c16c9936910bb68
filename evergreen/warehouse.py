"""The DuckDB warehouse: one file, one writer at a time, tables created on first use.

On the cluster profile the raw tables and the ingest log are not in that file (one writer per
file cannot take two hosts): each raw partition is numbered versions of one Parquet file on the
shared store (``settings.raw_dir``), each written once by the one step that makes it, under a
temporary name of its host, process and a random part, then linked to its own name; and each
ingest's log row is a file of its own. Every connection (``warehouse``) sees them as temporary
views over the newest versions, so two hosts write different partitions at once with no lock
between them, and a reader sees a partition's old version or its new one, never half of one.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from evergreen.ingest.contracts import FEEDS, PROVENANCE_COLUMNS
from evergreen.serving.live_schema import TABLE as LIVE
from evergreen.serving.live_schema import table_ddl

if TYPE_CHECKING:
    import pyarrow as pa

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
    """(Re)define each raw table, the ingest log and ``live_predictions`` as a temporary view
    over its files under ``raw_dir`` as they are now: each partition's newest version, every log
    file (a snapshot: the connection reads the same files to its end; a table with no file yet
    is empty, with its columns and types)."""
    create_tables(conn, STAGED, temp=True)
    conn.execute(table_ddl(STAGED + LIVE, temp=True))  # the served days: partitioned as raw
    for table in (*RAW_TABLES, LIVE):
        typed = f"SELECT * FROM {STAGED}{table} WHERE false"
        files = _log_files(raw_dir) if table == INGEST_LOG else _newest_versions(raw_dir, table)
        if files:  # read_parquet refuses an empty list
            listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
            typed += (
                f" UNION ALL BY NAME SELECT * FROM read_parquet([{listed}], "
                "union_by_name = true, hive_partitioning = false)"
            )
        conn.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS {typed}")


# A partition's versions: TABLE/date=D/part-000001.parquet, part-000002.parquet, ... Each is
# written once and never replaced: DuckDB opens a file more than once in one query (its footer,
# then its row groups), so a file renamed over the one it was reading fails it ("bytes outside
# file") or worse. A superseded version is removed once its successor is this old: longer than
# any reader's connection lasts.
VERSION_GRACE_S = 3600.0
_VERSION = "part-*.parquet"


def partition_versions(raw_dir: Path, table: str, day: dt.date) -> list[Path]:
    """A raw partition's files on the cluster profile, oldest first (the newest is read)."""
    return _versions(raw_dir / table / f"date={day.isoformat()}")


def _versions(folder: Path) -> list[Path]:
    return sorted(folder.glob(_VERSION), key=_version_number)


def _version_number(path: Path) -> int:
    return int(path.stem.removeprefix("part-"))


def _newest_versions(raw_dir: Path, table: str) -> list[Path]:
    newest = (_versions(folder) for folder in sorted((raw_dir / table).glob("date=*")))
    return [versions[-1] for versions in newest if versions]


def _log_files(raw_dir: Path) -> list[Path]:
    """Every ingest's log file: ``ingest_log/FEED/date=D/STAMP.HOST.PID.RANDOM.parquet``."""
    return sorted((raw_dir / INGEST_LOG).glob("*/date=*/*.parquet"))


def _write_version(rows: pa.Table, folder: Path) -> Path:
    """Write the partition's next version under a name no one has written (two writers of one
    partition at once, which one step per partition rules out, would each get a name), then
    drop the versions superseded long enough ago."""
    from evergreen.features.tables import write_table

    while True:
        versions = _versions(folder)
        number = _version_number(versions[-1]) + 1 if versions else 1
        try:
            path = write_table(rows, folder / f"part-{number:06d}.parquet", exclusive=True)
            break
        except FileExistsError:
            continue  # another writer took that number first
    _drop_superseded(_versions(folder))
    return path


def _drop_superseded(versions: list[Path]) -> None:
    now = time.time()
    for old, successor in pairwise(versions):
        try:
            if now - successor.stat().st_mtime > VERSION_GRACE_S:
                old.unlink(missing_ok=True)
        except FileNotFoundError:
            continue  # dropped by the same rule in another process


def replace_partition(
    conn: duckdb.DuckDBPyConnection,
    settings: EvergreenSettings,
    table: str,
    day: dt.date,
    insert: Callable[[str], None],
) -> None:
    """Replace one day of a raw table with what ``insert(target_table)`` inserts: in the
    warehouse file in one transaction; on the cluster profile as the day's next version, written
    under a temporary name then linked to a name of its own (a reader sees the old version or
    the new one, whole)."""
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
    folder = settings.raw_dir / table / f"date={day.isoformat()}"
    _write_staged(conn, settings.raw_dir, table, insert, lambda rows: _write_version(rows, folder))


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
    from evergreen.features.tables import temporary_suffix, write_table

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    name = f"{stamp}.{temporary_suffix().removesuffix('.tmp')}.parquet"
    folder = settings.raw_dir / INGEST_LOG / feed / f"date={day.isoformat()}"
    write = partial(write_table, path=folder / name, exclusive=True)
    _write_staged(conn, settings.raw_dir, INGEST_LOG, insert, write)


def _write_staged(
    conn: duckdb.DuckDBPyConnection,
    raw_dir: Path,
    table: str,
    insert: Callable[[str], None],
    write: Callable[[pa.Table], Path],
) -> None:
    """Insert into the table's staged rows, write them as one file, read the files again."""
    staged = STAGED + table
    conn.execute(f"DELETE FROM {staged}")
    insert(staged)
    write(conn.sql(f"SELECT * FROM {staged}").to_arrow_table())
    conn.execute(f"DELETE FROM {staged}")
    attach_raw_files(conn, raw_dir)  # this connection reads what it wrote
