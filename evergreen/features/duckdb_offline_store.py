"""Feast's DuckDB offline store with the feature scan bounded to what a point-in-time join can use.

Feast's DuckDB store (``feast.infra.offline_stores.duckdb``, through ``ibis.py``) reads every row
of each feature view's source and joins it to the entity frame on the join key, keeping the rows
with ``event_timestamp`` in ``[entity time - TTL, entity time]``: the join's cost grows with the
whole history on disk, not with the training window. No row outside ``[earliest entity time -
TTL, latest entity time]`` can ever pass those predicates, so this store filters each source to
that interval before Feast's join; DuckDB pushes the constant filter into the Parquet scan and
skips whole files by their row-group statistics (a daily partition has a single event time).
Everything else, the join, the deduplication on ``created_timestamp``, the on-demand views, is
Feast's own code, so the result is identical. Materialization's query (``pull_latest``) gets the
same filter to its [start, end] interval, for the same reason.

It plugs in through Feast's documented extension point for offline stores (``offline_store:
type: evergreen.features.duckdb_offline_store.EvergreenDuckDBOfflineStore`` in feature_store.yaml).

Imports Feast: import this module only where Feast is already imported.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import ibis
import pandas as pd
from feast import FeatureView
from feast.data_source import DataSource
from feast.infra.offline_stores import offline_utils
from feast.infra.offline_stores.duckdb import (
    DuckDBOfflineStore,
    DuckDBOfflineStoreConfig,
    _read_data_source,
    _write_data_source,
)
from feast.infra.offline_stores.ibis import (
    get_historical_features_ibis,
    pull_latest_from_table_or_query_ibis,
)
from feast.infra.offline_stores.offline_store import RetrievalJob
from feast.infra.registry.base_registry import BaseRegistry
from feast.repo_config import RepoConfig
from ibis.expr.types import Table

Bounds = tuple[dt.datetime, dt.datetime]


class EvergreenDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    """Same settings as Feast's DuckDB store, under this store's type name."""

    type: Literal["evergreen.features.duckdb_offline_store.EvergreenDuckDBOfflineStore"] = (  # type: ignore[assignment]
        "evergreen.features.duckdb_offline_store.EvergreenDuckDBOfflineStore"
    )


def in_utc(frame: pd.DataFrame) -> pd.DataFrame:
    """Feast's ``make_df_tzaware``: every datetime column in UTC, a naive one read as UTC. Feast
    runs it on every entity frame (``coerce_tz_aware``), copying and re-parsing all of it,
    half a second per 5M rows even when the columns are UTC already; feature_store.yaml turns
    it off and this store does the same here, converting only columns that are not UTC yet."""
    changed = {}
    for name in frame.columns:
        dtype = frame[name].dtype
        if isinstance(dtype, pd.DatetimeTZDtype):
            if str(dtype.tz) != "UTC":
                changed[name] = frame[name].dt.tz_convert("UTC")
        elif pd.api.types.is_datetime64_dtype(dtype):
            changed[name] = frame[name].dt.tz_localize("UTC")
    # a shallow copy: Feast writes the timestamp column back into the frame it is given
    return frame.copy(deep=False).assign(**changed)


def _entity_time_range(entity_df: pd.DataFrame) -> Bounds:
    """The earliest and latest entity times, in UTC (a naive time is UTC, as in Feast)."""
    schema = dict(zip(entity_df.columns, entity_df.dtypes, strict=True))
    stamps = entity_df[offline_utils.infer_event_timestamp_from_entity_df(schema)]
    if not pd.api.types.is_datetime64_any_dtype(stamps):
        stamps = pd.to_datetime(stamps, utc=True)
    return tuple(_utc(t) for t in (stamps.min(), stamps.max()))  # type: ignore[return-value]


def _utc(stamp: pd.Timestamp) -> dt.datetime:
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def source_bounds(feature_views: list[FeatureView], entities: Bounds) -> dict[str, Bounds]:
    """Per batch source, the event times a join of entities at times ``entities`` (earliest,
    latest) can use: [earliest - TTL, latest], the widest over the views reading the source.
    A source read by a view without TTL (any older row may join) gets no bound."""
    earliest, latest = entities
    bounds: dict[str, Bounds] = {}
    unbounded: set[str] = set()
    for view in feature_views:
        source = view.batch_source
        if source is None:
            continue
        if not view.ttl:
            unbounded.add(source.name)
            continue
        low = earliest - view.ttl
        if source.name in bounds:
            low = min(low, bounds[source.name][0])
        bounds[source.name] = (low, latest)
    return {name: b for name, b in bounds.items() if name not in unbounded}


def _bounded_reader(bounds: dict[str, Bounds]):
    def read(source: DataSource, repo_path: str) -> Table:
        table = _read_data_source(source, repo_path)
        if source.name not in bounds:
            return table
        low, high = bounds[source.name]
        ts = table[source.timestamp_field]
        return table.filter(ts >= ibis.literal(low), ts <= ibis.literal(high))

    return read


class EvergreenDuckDBOfflineStore(DuckDBOfflineStore):
    """DuckDB offline store whose point-in-time join reads only the rows it can use."""

    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: dt.datetime,
        end_date: dt.datetime,
    ) -> RetrievalJob:
        """Feast's query for materialization, the source filtered to [start, end] first:
        Feast compares the timestamp cast to a naive one, which DuckDB cannot push into
        the Parquet scan, so every day of history would be read to load one."""
        bounds = {data_source.name: (start_date.astimezone(dt.UTC), end_date.astimezone(dt.UTC))}
        return pull_latest_from_table_or_query_ibis(
            config=config,
            data_source=data_source,
            join_key_columns=join_key_columns,
            feature_name_columns=feature_name_columns,
            timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column,
            start_date=start_date,
            end_date=end_date,
            data_source_reader=_bounded_reader(bounds),
            data_source_writer=_write_data_source,
            staging_location=config.offline_store.staging_location,
            staging_location_endpoint_override=config.offline_store.staging_location_endpoint_override,
        )

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        """Feast's DuckDB join, each source filtered to [earliest - TTL, latest] entity time."""
        if isinstance(entity_df, pd.DataFrame):
            entity_df = in_utc(entity_df)
        if not isinstance(entity_df, pd.DataFrame) or entity_df.empty:
            return DuckDBOfflineStore.get_historical_features(
                config,
                feature_views,
                feature_refs,
                entity_df,
                registry,
                project,
                full_feature_names,
                filter_by_created_timestamp,
            )
        bounds = source_bounds(feature_views, _entity_time_range(entity_df))
        return get_historical_features_ibis(
            config=config,
            feature_views=feature_views,
            feature_refs=feature_refs,
            entity_df=entity_df,
            registry=registry,
            project=project,
            full_feature_names=full_feature_names,
            data_source_reader=_bounded_reader(bounds),
            data_source_writer=_write_data_source,
            staging_location=config.offline_store.staging_location,
            staging_location_endpoint_override=config.offline_store.staging_location_endpoint_override,
            filter_by_created_timestamp=filter_by_created_timestamp,
        )
