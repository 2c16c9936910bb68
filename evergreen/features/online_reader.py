"""The serving path's read of a FeatureService from the online store, with the offline TTL rule.

``OnlineReader.read`` gives what Feast's ``get_online_features`` gives for the FeatureService,
with one rule added: the online store keeps each entity's newest row whatever its age, while the
offline join ignores a row older than the view's TTL, so such a row reads as None (and the
on-demand views are computed from that None, as offline). ``read_through_feast`` is that very
read done by ``get_online_features``; a test asserts the two agree value for value.

Why ``read`` does not call ``get_online_features``: for 100 entities Feast spends ~10 ms
building ValueProtos per value, converting them back, and running the on-demand views through
its generic response machinery. ``read`` runs one SQL query per feature view on Evergreen's
online store (``EvergreenSqliteOnlineStore.read_rows``, plain column values) and then the
on-demand views' own registered transformations (``OnDemandFeatureView.transform_dict``, the
same call Feast makes) with request fields converted exactly as Feast converts them.

On Feast's Redis store (the cluster profile) ``read`` has a fast path too (``redis``): one
pipeline holds an ``HMGET`` per view and row, in Feast's own layout (the serialized entity key
and project as the key, ``mmh3("view:feature")`` fields, ``_ts:view``), and the request-time
state's range reads (``RedisRealtimeState.read_commands``): one round trip for the whole read.
Any other online store Feast supports (Feast's own SQLite, ...) is read through
``read_through_feast``: ``open`` notes which path the store has (``fast``, ``redis``), and
``read`` takes it, so serving works, slower, on every store.

Imports Feast: import this module only inside asset bodies, tests, benchmarks and serving.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import Any

from feast import FeatureService, FeatureStore
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.type_map import (
    NULL_TIMESTAMP_INT_VALUE,
    feast_value_type_to_python_type,
    python_values_to_proto_values,
)
from feast.value_type import ValueType

from evergreen.features.realtime import is_realtime
from evergreen.features.realtime_redis import RedisRealtimeState, unavailable_as
from evergreen.features.realtime_state import RealtimeState
from evergreen.features.repo import FEATURE_SERVICE
from evergreen.features.sqlite_online_store import (
    EvergreenSqliteOnlineStore,
    EvergreenSqliteOnlineStoreConfig,
    WalCheckpointer,
    join_key,
    realtime_state_of,
)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_PLAIN = {
    ValueType.INT64: int,
    ValueType.INT32: int,
    ValueType.DOUBLE: float,
    ValueType.FLOAT: float,
}


@dataclass(frozen=True)
class _ViewLookup:
    """One feature view of the service: its query, key column, features and TTL."""

    name: str
    sql: str
    request_key: str  # the request's column holding the view's join key
    features: list[str]
    ttl: dt.timedelta | None
    redis: _RedisKeys | None = None  # the view's layout in Feast's Redis store


@dataclass(frozen=True)
class _RedisKeys:
    """Where Feast's Redis store keeps one view's rows: a hash per entity (the serialized entity
    key, then the project), a field per feature (``mmh3("view:feature")``), then ``_ts:view``."""

    join_key: str
    value_field: str  # the join key's ValueProto field (int64_val, int32_val)
    fields: list[bytes | str]
    project: str
    key_version: int

    def key(self, value: Any) -> bytes:
        """The hash key of the entity whose join key is ``value`` (Feast's ``_redis_key``)."""
        from feast.infra.online_stores.helpers import _redis_key
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
        from feast.protos.feast.types.Value_pb2 import Value as ValueProto

        entity = EntityKeyProto(
            join_keys=[self.join_key], entity_values=[ValueProto(**{self.value_field: value})]
        )
        return _redis_key(self.project, entity, self.key_version)


@dataclass(frozen=True)
class _Derived:
    """One on-demand view of the service: its request fields (with types) and outputs."""

    view: OnDemandFeatureView
    request_fields: dict[str, ValueType]
    outputs: dict[str, ValueType]

    def transform(self, inputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """The view's outputs for ``inputs``, as ``OnDemandFeatureView.transform_dict`` gives
        them. A python-mode batch view calls its UDF straight away: ``transform_dict`` runs
        the same UDF, but Feast's class is ``@typechecked`` and typeguard walks every value of
        the input dict on each call, a tenth of a request's CPU."""
        view = self.view
        if view.mode != "python" or view.singleton:
            return view.transform_dict(inputs)
        both_names = dict(inputs)  # the UDF may read a source feature by either name
        for projection in view.source_feature_view_projections.values():
            for feature in projection.features:
                if feature.name in inputs:
                    both_names[f"{projection.name}__{feature.name}"] = inputs[feature.name]
        return view.feature_transformation.udf(both_names)


@dataclass
class OnlineReader:
    """Reads the FeatureService for request rows at a time (module docstring). Build once
    (``open``), then ``read`` per request; safe to share between threads."""

    store: FeatureStore
    service: FeatureService
    view_features: dict[str, list[str]]
    derived_from: dict[str, tuple[list[str], list[str]]]  # on-demand view -> (views, outputs)
    fast: bool = True  # Evergreen's SQLite store: plain SQL; otherwise through Feast
    redis: bool = False  # Feast's Redis store: one pipeline of its hashes and the state
    _lookups: list[_ViewLookup] = field(default_factory=list, repr=False)
    _realtime: dict[str, list[str]] = field(default_factory=dict, repr=False)  # view -> features
    _state: RealtimeState | RedisRealtimeState | None = field(default=None, repr=False)
    _derived: list[_Derived] = field(default_factory=list, repr=False)
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _checkpointer: WalCheckpointer | None = field(default=None, repr=False)

    @classmethod
    def open(cls, store: FeatureStore, service_name: str = FEATURE_SERVICE) -> OnlineReader:
        """The reader of ``service_name`` on ``store``: the fast path on Evergreen's SQLite
        store, Feast's ``get_online_features`` on any other."""
        fast = isinstance(store.config.online_store, EvergreenSqliteOnlineStoreConfig)
        service = store.get_feature_service(service_name)
        on_demand = {v.name: v for v in store.list_on_demand_feature_views()}
        reader = cls(store, service, {}, {}, fast=fast, redis=_plain_redis(store.config))
        for projection in service.feature_view_projections:
            names = [f.name for f in projection.features]
            if projection.name in on_demand:
                reader._add_derived(on_demand[projection.name], names)
            else:
                reader._add_view(projection, names)
        reader._check_sources()
        return reader

    def _check_sources(self) -> None:
        """Each on-demand view's source features are read by the service's own views."""
        for derived in self._derived:
            for name, projection in derived.view.source_feature_view_projections.items():
                lacking = {f.name for f in projection.features} - set(
                    self.view_features.get(name, [])
                )
                if lacking:
                    raise ValueError(
                        f"On-demand view {derived.view.name} reads {name}: {sorted(lacking)}, "
                        f"which FeatureService {self.service.name} does not include."
                    )

    def _add_view(self, projection: Any, names: list[str]) -> None:
        config = self.store.config
        view = self.store.get_feature_view(projection.name)
        if is_realtime(view):  # computed from the transaction state at the request's time
            self._realtime[view.name] = names
            self.view_features[projection.name] = names
            return
        key = projection.join_key_map.get(join_key(view), join_key(view))
        sql = EvergreenSqliteOnlineStore().select_sql(config, view, names) if self.fast else ""
        redis = _redis_keys(config, view, names) if self.redis else None
        self._lookups.append(_ViewLookup(view.name, sql, key, names, view.ttl, redis))
        self.view_features[projection.name] = names

    def _add_derived(self, view: OnDemandFeatureView, names: list[str]) -> None:
        request = {
            f.name: f.dtype.to_value_type()
            for source in view.source_request_sources.values()
            for f in source.schema
        }
        outputs = {f.name: f.dtype.to_value_type() for f in view.features if f.name in names}
        self._derived.append(_Derived(view, request, outputs))
        self.derived_from[view.name] = (list(view.source_feature_view_projections), names)

    @property
    def state(self) -> RealtimeState | RedisRealtimeState:
        """The request-time state of this store: in its SQLite file, or in its Redis."""
        if self._state is None:
            self._state = realtime_state_of(self.store.config)
        return self._state

    def _realtime_values(self, rows: dict[str, list[Any]], at: dt.datetime) -> dict[str, list]:
        if not self._realtime:
            return {}
        computed = self.state.read(self.connection(), rows, at)
        return {n: computed[n] for names in self._realtime.values() for n in names}

    def connection(self) -> sqlite3.Connection | Any:
        """This thread's connection to the online store (reads, and the state's writes); on
        any store but Evergreen's SQLite store, the state's own client."""
        if not self.fast:
            return self.state.connect()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            store = EvergreenSqliteOnlineStore()
            conn = self._local.conn = store.connect(self.store.config)
            conn.execute("PRAGMA busy_timeout = 10000")  # a replica's write waits for another's
            conn.execute("PRAGMA synchronous = NORMAL")
            if self._checkpointer is not None:  # its thread checkpoints, not the request's
                conn.execute("PRAGMA wal_autocheckpoint = 0")
        return conn

    def checkpoint_in_background(self) -> None:
        """On Evergreen's SQLite store, leave WAL checkpoints to a thread of their own
        (``WalCheckpointer``: a serving process's requests then never wait on a sync); call
        before the first read, and ``close`` at the end. Elsewhere nothing to do."""
        if self.fast and self._checkpointer is None:
            store = EvergreenSqliteOnlineStore()
            self._checkpointer = store.checkpointer(self.store.config).start()

    def close(self) -> None:
        """Stop the background checkpoints, if any, and close the state's own client if it
        was opened (``state`` would open one only to close it)."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._state is not None:
            self._state.close()

    def read(self, rows: dict[str, list[Any]], at: dt.datetime) -> dict[str, list[Any]]:
        """Features for ``rows`` (join keys and request fields, column lists) at time ``at``:
        the join keys and every feature of the service, one list each."""
        if self.redis:
            return self._read_redis(rows, at)
        if not self.fast:
            return self.read_through_feast(rows, at)
        conn = self.connection()
        values: dict[str, list[Any]] = {}
        for lookup in self._lookups:
            values[lookup.request_key] = rows[lookup.request_key]
            values.update(_lookup(conn, lookup, rows, at))
        values.update(self._realtime_values(rows, at))
        for derived in self._derived:
            values.update(_derive(derived, rows, values))
        return values

    def _read_redis(self, rows: dict[str, list[Any]], at: dt.datetime) -> dict[str, list[Any]]:
        """``read`` on Feast's Redis store: every view's hashes and the request-time state's
        ranges in one pipeline (one round trip), then the on-demand views."""
        state = self.state
        pipe = state.client.pipeline(transaction=False)
        for lookup in self._lookups:
            for value in rows[lookup.request_key]:
                pipe.hmget(lookup.redis.key(value), lookup.redis.fields)
        if self._realtime:
            state.read_commands(pipe, rows, at)
        with unavailable_as(state.where):
            replies = pipe.execute()
        values: dict[str, list[Any]] = {}
        offset = 0
        for lookup in self._lookups:
            keys = rows[lookup.request_key]
            values[lookup.request_key] = keys
            values.update(_redis_rows(lookup, replies[offset : offset + len(keys)], at))
            offset += len(keys)
        if self._realtime:
            computed = state.features(replies[offset:], rows, at)
            values.update({n: computed[n] for names in self._realtime.values() for n in names})
        for derived in self._derived:
            values.update(_derive(derived, rows, values))
        return values

    def read_through_feast(
        self, rows: dict[str, list[Any]], at: dt.datetime
    ) -> dict[str, list[Any]]:
        """The same read through Feast's ``get_online_features`` (for parity tests and as the
        benchmark's reference): a view's row older than its TTL at ``at`` reads as None, and
        so do the on-demand outputs computed from that view. The request-time views have no
        Feast read (their values are computed from the state at ``at``): they come from the
        same computation as ``read``."""
        response = self.store.get_online_features(features=self.service, entity_rows=rows)
        names = list(response.proto.metadata.feature_names.val)
        vectors = dict(zip(names, response.proto.results, strict=True))
        values = {name: [_python(v) for v in vectors[name].values] for name in names}
        expired = {}
        for lookup in self._lookups:
            oldest = (at - lookup.ttl).timestamp() if lookup.ttl else float("-inf")
            stamps = vectors[lookup.features[0]].event_timestamps
            expired[lookup.name] = [not ts.seconds or ts.seconds < oldest for ts in stamps]
            _blank(values, lookup.features, expired[lookup.name])
        for sources, features in self.derived_from.values():
            stale = [
                any(expired.get(s, [False] * (i + 1))[i] for s in sources)
                for i in range(len(values[features[0]]))
            ]
            _blank(values, features, stale)
        values.update(self._realtime_values(rows, at))
        return values


def _lookup(
    conn: sqlite3.Connection, lookup: _ViewLookup, rows: dict[str, list[Any]], at: dt.datetime
) -> dict[str, list[Any]]:
    """One view's features per request row; None without a row within the TTL."""
    keys = rows[lookup.request_key]
    found = EvergreenSqliteOnlineStore.read_rows(conn, lookup.sql, keys)
    oldest = (at - lookup.ttl - _EPOCH) // dt.timedelta(microseconds=1) if lookup.ttl else None
    missing = (None,) * (len(lookup.features) + 2)
    in_order = [found.get(key, missing) for key in keys]
    if oldest is not None:
        in_order = [
            row if row[-1] is not None and row[-1] >= oldest else missing for row in in_order
        ]
    columns = list(zip(*in_order, strict=True))[1:-1] if in_order else [()] * len(lookup.features)
    return {name: list(column) for name, column in zip(lookup.features, columns, strict=True)}


def _plain_redis(config: Any) -> bool:
    """Whether the store is Feast's Redis store on one server through redis-py (the layout
    ``_RedisKeys`` reads; a Redis Cluster or Sentinel, or the GLIDE client, go through Feast)."""
    store = config.online_store
    if getattr(store, "type", "") != "redis":
        return False
    return str(getattr(store, "redis_type", "redis")).endswith("redis") and (
        str(getattr(store, "client", "redis")).endswith("redis")
    )


def _redis_keys(config: Any, view: Any, names: list[str]) -> _RedisKeys:
    from feast.infra.online_stores.helpers import _mmh3
    from feast.infra.online_stores.redis import _versioned_fv_name

    name = _versioned_fv_name(view, config)
    key_types = {e.name: e.dtype.to_value_type() for e in view.entity_columns}
    key = join_key(view)
    field = "int32_val" if key_types[key] is ValueType.INT32 else "int64_val"
    fields: list[bytes | str] = [_mmh3(f"{name}:{feature}") for feature in names]
    fields.append(f"_ts:{name}")
    return _RedisKeys(key, field, fields, config.project, config.entity_key_serialization_version)


def _redis_rows(lookup: _ViewLookup, replies: list[list[Any]], at: dt.datetime) -> dict:
    """One view's features per request row from its ``HMGET`` replies, as ``read_through_feast``
    reads them: None without a row, or with a row older than the TTL at ``at``."""
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto
    from google.protobuf.timestamp_pb2 import Timestamp

    oldest = (at - lookup.ttl).timestamp() if lookup.ttl else float("-inf")
    columns: list[list[Any]] = [[] for _ in lookup.features]
    for reply in replies:
        stamp = Timestamp()
        if reply[-1]:
            stamp.ParseFromString(reply[-1])
        fresh = bool(stamp.seconds) and stamp.seconds >= oldest
        for column, raw in zip(columns, reply[:-1], strict=True):
            column.append(_python(ValueProto.FromString(raw)) if fresh and raw else None)
    return dict(zip(lookup.features, columns, strict=True))


def _derive(
    derived: _Derived, rows: dict[str, list[Any]], values: dict[str, list[Any]]
) -> dict[str, list[Any]]:
    """The on-demand view's outputs, computed as Feast computes them online."""
    inputs = {name: _as_feast_gives(rows[name], t) for name, t in derived.request_fields.items()}
    for projection in derived.view.source_feature_view_projections.values():
        for feature in projection.features:
            inputs[feature.name] = values[feature.name]
    result = derived.transform(inputs)
    return {name: _as_feast_gives(result[name], t) for name, t in derived.outputs.items()}


def _as_feast_gives(column: list[Any], value_type: ValueType) -> list[Any]:
    """Values as Feast hands them over after its proto round trip: ``None`` and NaN become
    ``None``, plain numbers are cast, other types go through Feast's own conversion, once per
    distinct value (a request's rows usually share one ``tx_datetime``)."""
    plain = _PLAIN.get(value_type)
    if plain is not None:
        return [None if v is None or v != v else plain(v) for v in column]
    if value_type is ValueType.UNIX_TIMESTAMP and all(
        v is None or isinstance(v, dt.datetime) for v in column
    ):
        return [None if v is None else _whole_utc_second(v) for v in column]
    try:
        distinct = list(dict.fromkeys(column))
    except TypeError:  # unhashable values: convert each
        distinct = None
    protos = python_values_to_proto_values(distinct or list(column), value_type)
    converted = [feast_value_type_to_python_type(p) for p in protos]
    if distinct is None:
        return converted
    by_value = dict(zip(distinct, converted, strict=True))
    return [by_value[v] for v in column]


def _whole_utc_second(value: dt.datetime) -> dt.datetime | None:
    """A datetime through Feast's UNIX_TIMESTAMP proto and back: whole seconds, UTC (a naive
    one read as UTC), without building the proto."""
    if value.utcoffset() is None:
        value = value.replace(tzinfo=dt.UTC)
    seconds = int(value.timestamp())
    return (
        None if seconds == NULL_TIMESTAMP_INT_VALUE else dt.datetime.fromtimestamp(seconds, dt.UTC)
    )


def _python(value: Any) -> Any:
    """A feature value of Feast's response as Python (None when missing), as ``to_dict``
    gives it for the scalar types used here."""
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    if kind == "unix_timestamp_val":
        return dt.datetime.fromtimestamp(value.unix_timestamp_val, dt.UTC)
    return getattr(value, kind)


def _blank(values: dict[str, list[Any]], names: list[str], mask: list[bool]) -> None:
    for i, gone in enumerate(mask):
        if gone:
            for name in names:
                values[name][i] = None
