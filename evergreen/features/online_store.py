"""Feast's SQLite online store, one row per entity: batch writes, one read per feature view.

Feast's own SQLite store keeps one row per entity *and feature* and writes them one statement
at a time, which caps online materialization at a few thousand entities a second. This store
plugs in through Feast's documented extension point (``online_store: type:
evergreen.features.online_store.EvergreenSqliteOnlineStore`` in feature_store.yaml), so
materialization, ``push`` and ``get_online_features`` keep going through Feast; only the storage
layout differs: each entity's feature values are one serialized ``RepeatedValue`` next to their
names, written with ``executemany``, and an older row never replaces a newer one.

Imports Feast: import this module only where Feast is already imported.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, Literal

from feast import Entity, FeatureView
from feast.infra.infra_object import InfraObject
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.sqlite import (
    SqliteOnlineStore,
    SqliteOnlineStoreConfig,
    _quote_id,
    _table_id,
)
from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import RepeatedValue
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig

Row = tuple[EntityKeyProto, dict[str, ValueProto], dt.datetime, dt.datetime | None]


class EvergreenSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    """Same settings as Feast's SQLite store (``path``), under this store's type name."""

    type: Literal["evergreen.features.online_store.EvergreenSqliteOnlineStore"] = (  # type: ignore[assignment]
        "evergreen.features.online_store.EvergreenSqliteOnlineStore"
    )


def _epoch(ts: dt.datetime | None) -> int | None:
    if ts is None:
        return None
    return int((ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)).timestamp())


class EvergreenSqliteOnlineStore(SqliteOnlineStore):
    """SQLite online store with one row per entity (see the module docstring)."""

    def _table(self, config: RepoConfig, table: FeatureView) -> str:
        versioned = config.registry.enable_online_feature_view_versioning
        return _quote_id(_table_id(config.project, table, versioned) + "__entities")

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[Row],
        progress: Callable[[int], Any] | None,
    ) -> None:
        """Upsert every entity of the batch in one ``executemany``; newer rows win."""
        version = config.entity_key_serialization_version
        rows = [
            (
                serialize_entity_key(key, entity_key_serialization_version=version),
                ",".join(values),
                RepeatedValue(val=values.values()).SerializeToString(),
                _epoch(event_ts),
                _epoch(created_ts),
            )
            for key, values, event_ts, created_ts in data
        ]
        name = self._table(config, table)
        conn = self._get_conn(config)
        with conn:
            conn.executemany(
                f"INSERT INTO {name} VALUES (?, ?, ?, ?, ?) ON CONFLICT(entity_key) DO UPDATE SET "
                "feature_names = excluded.feature_names, feature_values = excluded.feature_values, "
                "event_ts = excluded.event_ts, created_ts = excluded.created_ts "
                f"WHERE excluded.event_ts >= {name}.event_ts",
                rows,
            )
        if progress:
            progress(len(rows))

    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: list[str] | None = None,
    ) -> list[tuple[dt.datetime | None, dict[str, ValueProto] | None]]:
        """The newest row of each entity (None, None when there is none), in request order."""
        version = config.entity_key_serialization_version
        keys = [
            serialize_entity_key(k, entity_key_serialization_version=version) for k in entity_keys
        ]
        found = self._get_conn(config).execute(
            f"SELECT entity_key, feature_names, feature_values, event_ts FROM "
            f"{self._table(config, table)} WHERE entity_key IN ({','.join('?' * len(keys))})",
            keys,
        )
        by_key = {row[0]: row[1:] for row in found.fetchall()}
        return [_decode(by_key.get(key)) for key in keys]

    def update(
        self,
        config: RepoConfig,
        tables_to_delete: Sequence[FeatureView],
        tables_to_keep: Sequence[FeatureView],
        entities_to_delete: Sequence[Entity],
        entities_to_keep: Sequence[Entity],
        partial: bool,
    ) -> None:
        """Create the tables of kept views, drop those of deleted ones (``feast apply``)."""
        conn = self._get_conn(config)
        with conn:
            for table in tables_to_keep:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {self._table(config, table)} (entity_key BLOB "
                    "PRIMARY KEY, feature_names TEXT, feature_values BLOB, event_ts INTEGER, "
                    "created_ts INTEGER) WITHOUT ROWID"
                )
            for table in tables_to_delete:
                conn.execute(f"DROP TABLE IF EXISTS {self._table(config, table)}")

    def plan(self, config: RepoConfig, desired_registry_proto: RegistryProto) -> list[InfraObject]:
        """No infra objects of Feast's layout: ``update`` creates this store's tables."""
        return []


def _decode(row: tuple | None) -> tuple[dt.datetime | None, dict[str, ValueProto] | None]:
    if row is None:
        return None, None
    names, blob, event_ts = row
    values = RepeatedValue.FromString(blob).val
    return dt.datetime.fromtimestamp(event_ts, dt.UTC), dict(
        zip(names.split(","), values, strict=True)
    )


__all__ = ["EvergreenSqliteOnlineStore", "EvergreenSqliteOnlineStoreConfig"]
