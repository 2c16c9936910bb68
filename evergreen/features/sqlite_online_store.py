"""Feast's SQLite online store, one row per entity and one typed column per feature.

Why not Feast's stock ``SqliteOnlineStore``: it keeps one row per entity *and feature* (the value
a serialized ``ValueProto``, the key a serialized ``EntityKey`` blob) and its
``online_write_batch`` runs one UPSERT statement per (entity, feature): about 4,500 entities/s
here. And Feast's write interface, ``OnlineStore.online_write_batch``, takes every
value as a ``ValueProto`` built in Python (``feast.utils._convert_arrow_to_proto``, ~3 s per
100k rows of a seven-feature view), whichever stock path feeds it: materialization,
``write_to_online_store`` or ``push``.

This store plugs in through Feast's documented custom online store extension point
(``online_store: type: evergreen.features.sqlite_online_store.EvergreenSqliteOnlineStore`` in
feature_store.yaml); Feast still owns the registry, materialization intervals, push and
``get_online_features``. What differs:

* layout: table ``<project>_<view>__rows``, the view's one integer join key as SQLite's
  ``INTEGER PRIMARY KEY``, one column per feature, ``event_ts``/``created_ts`` in epoch µs;
* writes go in key order in one transaction (B-tree appends, not random page inserts);
* ``online_write_batch`` (Feast's interface) converts the protos it is given to columns;
* ``online_write_arrow`` takes the Arrow rows themselves, no protobufs: Feast's local engine
  calls it through ``evergreen.features.materialization.EvergreenComputeEngine``;
* ``read_rows`` gives plain column values to the serving reader (``OnlineReader``), and
  ``online_read`` the same rows as ValueProtos to ``get_online_features``.

An older event never replaces a newer one. A view whose features changed gets a new table at
``feast apply`` (the online store is derived data: materialization refills it). Views need one
integer join key and scalar features (every Evergreen view); ``feast apply`` says so otherwise.

Imports Feast: import this module only where Feast is already imported.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import pyarrow as pa
from feast import Entity, FeatureView
from feast.infra.infra_object import InfraObject
from feast.infra.online_stores.sqlite import (
    SqliteOnlineStore,
    SqliteOnlineStoreConfig,
    _quote_id,
    _table_id,
)
from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from feast.value_type import ValueType

from evergreen.features import realtime_state
from evergreen.features.realtime import is_realtime

logger = logging.getLogger(__name__)
_CHECKPOINT_BUSY_MS = 20  # how long a checkpoint round may wait for a lock

Row = tuple[EntityKeyProto, dict[str, ValueProto], dt.datetime, dt.datetime | None]
# Feast value type -> (SQLite column type, ValueProto field): the scalar types this store keeps.
_COLUMNS = {
    ValueType.INT64: ("INTEGER", "int64_val"),
    ValueType.INT32: ("INTEGER", "int32_val"),
    ValueType.DOUBLE: ("REAL", "double_val"),
    ValueType.FLOAT: ("REAL", "float_val"),
    ValueType.STRING: ("TEXT", "string_val"),
    ValueType.BYTES: ("BLOB", "bytes_val"),
    ValueType.BOOL: ("INTEGER", "bool_val"),
}
_INTEGER_KEYS = (ValueType.INT64, ValueType.INT32)
_KEY_BATCH = 10_000  # bound the SQL variables of one lookup
_WRITE_CHUNK = 50_000  # rows per executemany unless materialization.online_write_batch_size
_WRITE_CACHE_KIB = -65_536  # 64 MiB page cache while writing (SQLite's default is 2 MiB)
_READ_MMAP_BYTES = 1 << 30  # map up to 1 GiB of the file for reads (address space, not memory)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class EvergreenSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    """Same settings as Feast's SQLite store (``path``), under this store's type name."""

    type: Literal["evergreen.features.sqlite_online_store.EvergreenSqliteOnlineStore"] = (  # type: ignore[assignment]
        "evergreen.features.sqlite_online_store.EvergreenSqliteOnlineStore"
    )


def join_key(table: FeatureView) -> str:
    """The view's one integer join key (the table's primary key)."""
    keys = [(e.name, e.dtype.to_value_type()) for e in table.entity_columns]
    if len(keys) != 1 or keys[0][1] not in _INTEGER_KEYS:
        raise ValueError(
            f"Feature view {table.name}: the Evergreen online store keys a view by one integer "
            f"join key; it has {', '.join(f'{n} ({t.name})' for n, t in keys) or 'none'}."
        )
    return keys[0][0]


def feature_columns(table: FeatureView) -> list[tuple[str, ValueType]]:
    """The view's features and their Feast value types, in column order."""
    columns = [(f.name, f.dtype.to_value_type()) for f in table.features]
    unsupported = [f"{n} ({t.name})" for n, t in columns if t not in _COLUMNS]
    if unsupported:
        raise ValueError(
            f"Feature view {table.name}: the Evergreen online store keeps scalar features only "
            f"({', '.join(t.name for t in _COLUMNS)}); not {', '.join(unsupported)}."
        )
    return columns


def _micros(ts: dt.datetime | None) -> int | None:
    if ts is None:
        return None
    ts = ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)
    return (ts - _EPOCH) // dt.timedelta(microseconds=1)


def _python(value: ValueProto | None) -> Any:
    kind = None if value is None else value.WhichOneof("val")
    return None if kind is None or kind == "null_val" else getattr(value, kind)


def _arrow_micros(column: pa.ChunkedArray) -> list[int | None]:
    if not pa.types.is_timestamp(column.type):
        raise TypeError(f"expected a timestamp column, got {column.type}")
    return column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()


class WalCheckpointer:
    """Checkpoints the WAL of one SQLite file from a thread of its own, every ``interval_s``.

    Why: by default the connection whose commit takes the WAL past 1,000 pages copies them into
    the database and syncs both files, there and then. On a replica that is the request's
    thread: a few milliseconds of ``fdatasync`` every few hundred requests, which every request in
    flight waits out (the bento's p99 at 16 clients was 2.4x its p50). Connections that leave
    the WAL to this thread turn their own checkpoints off (``PRAGMA wal_autocheckpoint = 0``).

    Each round is PASSIVE: it never waits for, nor blocks, a reader or a writer, and SQLite runs
    it without Python's GIL, on the other core. A writer that never pauses keeps adding frames
    while it copies, so the WAL would never be rewound and would grow without end; once it holds
    ``restart_frames`` frames, a RESTART checkpoint (which holds writers back while it copies the
    few frames the PASSIVE one left, and syncs) rewinds it: one short stall per tens of
    megabytes instead of one per four. Another process checkpointing at the same moment makes a
    round a no-op (logged at debug)."""

    def __init__(self, path: str, interval_s: float = 0.25, restart_frames: int = 16_384) -> None:
        self.path, self.interval_s, self.restart_frames = path, interval_s, restart_frames
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)

    def start(self) -> WalCheckpointer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after one last checkpoint."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            # Short: a RESTART holds the write lock while it waits for readers, and a reader
            # that keeps an old snapshot (another process's long read) must not hold the
            # replicas' writes back for longer than this; the next round tries again.
            conn.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_BUSY_MS}")
            while True:
                stopping = self._stop.wait(self.interval_s)
                self.checkpoint(conn)
                if stopping:
                    return
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """One round: PASSIVE, then RESTART if the WAL has grown past ``restart_frames``."""
        try:
            _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames >= self.restart_frames:
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except sqlite3.OperationalError as exc:  # another checkpoint held the lock
            logger.debug("WAL checkpoint of %s skipped: %s", self.path, exc)


class EvergreenSqliteOnlineStore(SqliteOnlineStore):
    """SQLite online store with one row per entity and a column per feature (module docstring)."""

    def table_name(self, config: RepoConfig, table: FeatureView) -> str:
        """The quoted SQLite table of a feature view."""
        versioned = config.registry.enable_online_feature_view_versioning
        return _quote_id(_table_id(config.project, table, versioned) + "__rows")

    def connect(self, config: RepoConfig) -> sqlite3.Connection:
        """A new read connection to the store's file (a reader keeps one per thread); it maps
        the file into memory, so a key lookup reads pages without a system call each."""
        conn = sqlite3.connect(self._get_db_path(config), check_same_thread=False)
        conn.execute(f"PRAGMA mmap_size = {_READ_MMAP_BYTES}")
        return conn

    def checkpointer(self, config: RepoConfig) -> WalCheckpointer:
        """A (not yet started) ``WalCheckpointer`` of the store's file."""
        return WalCheckpointer(self._get_db_path(config))

    def _upsert_sql(self, config: RepoConfig, table: FeatureView) -> str:
        name = self.table_name(config, table)
        columns = [_quote_id(n) for n, _ in feature_columns(table)] + ["event_ts", "created_ts"]
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
        return (
            f"INSERT INTO {name} (entity_key, {', '.join(columns)}) "
            f"VALUES ({', '.join('?' * (len(columns) + 1))}) "
            f"ON CONFLICT(entity_key) DO UPDATE SET {updates} "
            f"WHERE excluded.event_ts >= {name}.event_ts"
        )

    def _write(self, config: RepoConfig, table: FeatureView, chunks: Iterable[Iterable]) -> None:
        """Upsert chunks of rows, each in key order, in one transaction. Key order matters: the
        B-tree then grows at one end instead of at random pages, 10x faster at 1M rows."""
        sql = self._upsert_sql(config, table)
        conn = self._get_conn(config)
        with conn:
            conn.execute(f"PRAGMA cache_size = {_WRITE_CACHE_KIB}")
            for rows in chunks:
                conn.executemany(sql, rows)

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[Row],
        progress: Callable[[int], Any] | None,
    ) -> None:
        """Feast's write interface (its own engine, push, ``write_to_online_store``)."""
        _not_realtime(table, "rows written through Feast")
        join_key(table)
        names = [n for n, _ in feature_columns(table)]
        rows = [
            (
                _python(key.entity_values[0]),
                *(_python(values.get(n)) for n in names),
                _micros(event_ts),
                _micros(created_ts),
            )
            for key, values, event_ts, created_ts in data
        ]
        self._write(config, table, [sorted(rows, key=lambda row: row[0])])
        if progress:
            progress(len(rows))

    def online_write_arrow(self, config: RepoConfig, table: FeatureView, rows: pa.Table) -> int:
        """Upsert the view's source rows (join key, features, timestamps) straight from Arrow,
        without protobufs, in one transaction; returns the number of rows."""
        _not_realtime(table, "rows materialized")
        if table.batch_source is None:
            raise ValueError(f"Feature view {table.name} has no batch source.")
        rows = rows.sort_by(join_key(table))  # once: then every chunk is a key range
        chunk = config.materialization_config.online_write_batch_size or _WRITE_CHUNK
        batches = (rows.slice(start, chunk) for start in range(0, rows.num_rows, chunk))
        self._write(config, table, (self._arrow_rows(table, b) for b in batches))
        return rows.num_rows

    @staticmethod
    def _arrow_rows(table: FeatureView, rows: pa.Table) -> Iterable[tuple]:
        columns = [rows.column(join_key(table)).to_pylist()]
        columns += [rows.column(n).to_pylist() for n, _ in feature_columns(table)]
        source = table.batch_source
        columns.append(_arrow_micros(rows.column(source.timestamp_field)))
        created = source.created_timestamp_column
        columns.append(_arrow_micros(rows.column(created)) if created else [None] * len(rows))
        return zip(*columns, strict=True)

    def select_sql(self, config: RepoConfig, table: FeatureView, features: Sequence[str]) -> str:
        """The lookup query of ``read_rows`` for these features (``{marks}``: the keys)."""
        join_key(table)
        columns = "".join(f"{_quote_id(f)}, " for f in features)
        return (
            f"SELECT entity_key, {columns}event_ts FROM {self.table_name(config, table)} "
            "WHERE entity_key IN ({marks})"
        )

    @staticmethod
    def read_rows(conn: sqlite3.Connection, sql: str, keys: Sequence[int]) -> dict[int, tuple]:
        """Rows ``(entity_key, *features, event_ts)`` of a ``select_sql`` query, by key."""
        found: dict[int, tuple] = {}
        for start in range(0, len(keys), _KEY_BATCH):
            chunk = keys[start : start + _KEY_BATCH]
            query = sql.format(marks=",".join("?" * len(chunk)))
            found.update((row[0], row) for row in conn.execute(query, chunk))
        return found

    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: list[str] | None = None,
    ) -> list[tuple[dt.datetime | None, dict[str, ValueProto] | None]]:
        """Feast's read interface: each entity's row as ValueProtos, in request order. A
        request-time view has no rows (it is computed from the state at a transaction's time:
        ``OnlineReader``), so Feast reads it as missing."""
        if is_realtime(table):
            return [(None, None)] * len(entity_keys)
        keys = [_python(k.entity_values[0]) for k in entity_keys]
        columns = feature_columns(table)
        if requested_features is not None:
            columns = [(n, t) for n, t in columns if n in set(requested_features)]
        sql = self.select_sql(config, table, [n for n, _ in columns])
        found = self.read_rows(self._get_conn(config), sql, keys)
        fields = [(n, _COLUMNS[t][1]) for n, t in columns]
        return [_as_protos(found.get(key), fields) for key in keys]

    def update(
        self,
        config: RepoConfig,
        tables_to_delete: Sequence[FeatureView],
        tables_to_keep: Sequence[FeatureView],
        entities_to_delete: Sequence[Entity],
        entities_to_keep: Sequence[Entity],
        partial: bool,
    ) -> None:
        """``feast apply``: a table per kept view (new if its features changed), deleted views'
        tables dropped; WAL journal so serving reads while materialization writes."""
        conn = self._get_conn(config)
        conn.execute("PRAGMA journal_mode = WAL")
        with conn:
            if any(is_realtime(t) for t in tables_to_keep):
                realtime_state.create_tables(conn, config.project)
            for table in tables_to_keep:
                if not is_realtime(table):
                    self._create(conn, config, table)
            for table in tables_to_delete:
                conn.execute(f"DROP TABLE IF EXISTS {self.table_name(config, table)}")

    def _create(self, conn: sqlite3.Connection, config: RepoConfig, table: FeatureView) -> None:
        name = self.table_name(config, table)
        join_key(table)
        legacy = _table_id(config.project, table) + "__entities"  # this store's first layout
        conn.execute(f"DROP TABLE IF EXISTS {_quote_id(legacy)}")
        wanted = [(n, _COLUMNS[t][0]) for n, t in feature_columns(table)]
        have = [(r[1], r[2]) for r in conn.execute(f"PRAGMA table_info({name})")]
        if have and have[1:-2] != wanted:
            conn.execute(f"DROP TABLE {name}")
        columns = "".join(f"{_quote_id(n)} {t}, " for n, t in wanted)
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {name} (entity_key INTEGER PRIMARY KEY, {columns}"
            "event_ts INTEGER, created_ts INTEGER)"
        )

    def plan(self, config: RepoConfig, desired_registry_proto: RegistryProto) -> list[InfraObject]:
        """No infra objects of Feast's layout: ``update`` creates this store's tables."""
        return []


def _not_realtime(table: FeatureView, what: str) -> None:
    if is_realtime(table):
        raise ValueError(
            f"Feature view {table.name} is computed at request time from the transaction "
            f"state (evergreen.features.realtime_state), not from {what}."
        )


def realtime_state_of(config: RepoConfig) -> Any:
    """The request-time state of this store: beside Feast's rows in its Redis
    (``RedisRealtimeState``, the cluster profile), else in its SQLite file (``RealtimeState``;
    in Feast's own SQLite store the tables are made here, no ``apply`` of this store made them).
    Any other store has no place for it: a ``ValueError`` says so."""
    kind = getattr(config.online_store, "type", "")
    if kind == "redis":
        from evergreen.features.realtime_redis import RedisRealtimeState

        return RedisRealtimeState.from_connection_string(
            config.online_store.connection_string, config.project
        )
    if kind != "sqlite" and not isinstance(config.online_store, EvergreenSqliteOnlineStoreConfig):
        raise ValueError(
            f"the request-time state lives in Evergreen's SQLite store, Feast's SQLite store or "
            f"Redis; online store {kind!r} has no place for it"
        )
    state = realtime_state.RealtimeState(
        EvergreenSqliteOnlineStore()._get_db_path(config), config.project
    )
    if not isinstance(config.online_store, EvergreenSqliteOnlineStoreConfig):
        conn = state.connect()
        realtime_state.create_tables(conn, config.project)
        conn.close()
    return state


def _as_protos(
    row: tuple | None, fields: list[tuple[str, str]]
) -> tuple[dt.datetime | None, dict[str, ValueProto] | None]:
    if row is None:
        return None, None
    values = {
        name: ValueProto() if value is None else ValueProto(**{field: _typed(field, value)})
        for (name, field), value in zip(fields, row[1:-1], strict=True)
    }
    return _EPOCH + dt.timedelta(microseconds=row[-1]), values


def _typed(field: str, value: Any) -> Any:
    return bool(value) if field == "bool_val" else value


__all__ = [
    "EvergreenSqliteOnlineStore",
    "realtime_state_of",
    "EvergreenSqliteOnlineStoreConfig",
    "feature_columns",
    "join_key",
]
