"""The Feast definitions: entities, one feature view per feature table, the request-time
features and the one FeatureService that training and serving both read.

Imports Feast: import this module only inside asset bodies, tests and benchmarks. The objects are
built by ``feast_definitions(features_dir)`` so that the CLI repo (``feature_repo/``, paths from
``EVERGREEN_HOME``) and the Dagster assets (paths from the resource) register the same thing.
"""

from __future__ import annotations

import datetime as dt
import inspect
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    RequestSource,
    ValueType,
)
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.types import Float64, Int64, UnixTimestamp

from evergreen.features import realtime
from evergreen.features.repo import (
    FEATURE_SERVICE,
    FEATURE_TABLES,
    definitions_version,
)
from evergreen.features.tables import CREATED_TIMESTAMP, EVENT_TIMESTAMP, FeatureTable

# A row is computed for day D and known from D+1 00:00; it serves day D+1 and, should the daily
# run be late, one more day. Offline joins and the serving helper both apply this TTL. Keep it
# in one unit (days or hours): Feast's DuckDB join fails on a mixed interval such as 1 day 6 h.
FEATURE_TTL = dt.timedelta(days=2)
_FEAST_TYPES = {pa.int64(): Int64, pa.float64(): Float64}
_REALTIME_TYPES = {"int": Int64, "float": Float64}


@dataclass(frozen=True)
class FeastDefinitions:
    """Everything ``feast apply`` registers."""

    entities: list[Entity]
    feature_views: list[FeatureView]
    on_demand_feature_views: list[OnDemandFeatureView]
    feature_service: FeatureService

    @property
    def objects(self) -> list[Any]:
        return [
            *self.entities,
            *self.feature_views,
            *self.on_demand_feature_views,
            self.feature_service,
        ]


def _entity(table: FeatureTable) -> Entity:
    return Entity(
        name=table.entity,
        join_keys=[table.join_key],
        value_type=ValueType.INT64,
        description=f"The {table.entity}, keyed by {table.join_key}.",
    )


def _feature_view(table: FeatureTable, entity: Entity, features_dir: Path) -> FeatureView:
    source = FileSource(
        name=f"{table.name}_source",
        path=table.source_glob(features_dir),
        timestamp_field=EVENT_TIMESTAMP,
        created_timestamp_column=CREATED_TIMESTAMP,
        description=f"Daily Parquet partitions of {table.name}.",
    )
    schema = [Field(name=table.join_key, dtype=Int64)]
    schema += [Field(name=n, dtype=_FEAST_TYPES[t]) for n, t in table.features.items()]
    return FeatureView(
        name=table.name,
        entities=[entity],
        ttl=FEATURE_TTL,
        schema=schema,
        source=source,
        online=True,
        description=table.description,
    )


def _transactions_source(features_dir: Path) -> PushSource:
    """Where the request-time views' events come from: each transaction ``/predict`` scores
    (pushed into the online state before it answers) and, in batch, the landed transaction
    files (the warehouse's ``raw_transactions``)."""
    landed = features_dir.resolve().parent / "landing" / "transactions" / "date=*" / "*.parquet"
    return PushSource(
        name="transactions",
        batch_source=FileSource(
            name="landed_transactions",
            path=str(landed),
            timestamp_field="tx_datetime",
            description="The landing zone's daily transaction files.",
        ),
        description="Transactions as they are scored, and as they land in batch.",
    )


def _realtime_view(
    name: str, entity: Entity, features: dict[str, str], source: PushSource, description: str
) -> FeatureView:
    """A view computed at request time from the online state (``evergreen.features.realtime``):
    tagged so that the online reader and the training set compute it, not Feast's row read."""
    schema = [Field(name=entity.join_key, dtype=Int64)]
    schema += [Field(name=n, dtype=_REALTIME_TYPES[t]) for n, t in features.items()]
    windows = realtime.CARD_WINDOWS if name == realtime.CARD_VIEW else realtime.TERMINAL_WINDOWS
    return FeatureView(
        name=name,
        entities=[entity],
        ttl=dt.timedelta(seconds=realtime.LONGEST_S),
        schema=schema,
        source=source,
        online=True,
        tags={realtime.COMPUTED_TAG: realtime.COMPUTED, "windows": ",".join(windows)},
        description=description,
    )


def _realtime_views(entities: list[Entity], features_dir: Path) -> list[FeatureView]:
    customer, terminal = entities
    source = _transactions_source(features_dir)
    return [
        _realtime_view(
            realtime.CARD_VIEW,
            customer,
            realtime.card_feature_types(),
            source,
            "The card's transactions before this one over 1 h, 24 h, 7 d and 30 d: count, total, "
            "mean, this amount over the mean; seconds since its previous transaction.",
        ),
        _realtime_view(
            realtime.TERMINAL_VIEW,
            terminal,
            realtime.terminal_feature_types(),
            source,
            "The terminal's transactions before this one over 1 h and 24 h.",
        ),
    ]


# The on-demand transformations run in training (on the joined frame) and in serving (on the
# online read): one function, two paths. Feast stores them by value (dill), so each is
# self-contained: no module-level helpers, imports inside.


def transaction_time_features(inputs: dict[str, list]) -> dict[str, list]:
    """The handbook's TX_DURING_NIGHT (hour <= 6) and TX_DURING_WEEKEND, in UTC."""
    import datetime

    def utc(ts: datetime.datetime) -> datetime.datetime:
        return ts.astimezone(datetime.UTC) if ts.tzinfo is not None else ts

    stamps = [utc(ts) for ts in inputs["tx_datetime"]]
    return {
        "tx_during_night": [int(ts.hour <= 6) for ts in stamps],
        "tx_during_weekend": [int(ts.weekday() >= 5) for ts in stamps],
    }


def amount_vs_customer_habits(inputs: dict[str, list]) -> dict[str, list]:
    """The amount over the customer's 7 and 30-day averages, and its 30-day z-score.

    None when the customer has no spending history (no row, or averages of zero)."""

    def ratio(amount, mean):
        return amount / mean if amount is not None and mean else None

    def zscore(amount, mean, std):
        return (amount - mean) / std if amount is not None and mean and std else None

    amounts = inputs["amount"]
    avg_7d, avg_30d = inputs["customer_avg_amount_7d"], inputs["customer_avg_amount_30d"]
    std_30d = inputs["customer_std_amount_30d"]
    return {
        "amount_to_avg_7d": [ratio(a, m) for a, m in zip(amounts, avg_7d, strict=True)],
        "amount_to_avg_30d": [ratio(a, m) for a, m in zip(amounts, avg_30d, strict=True)],
        "amount_zscore_30d": [
            zscore(a, m, sd) for a, m, sd in zip(amounts, avg_30d, std_30d, strict=True)
        ],
    }


# Source text read once at import: Feast keeps it in the registry for diffs and the UI.
_UDF_SOURCES = {
    f.__name__: inspect.getsource(f) for f in (transaction_time_features, amount_vs_customer_habits)
}


def _on_demand_view(
    udf: Callable[[dict[str, list]], dict[str, list]],
    sources: list[Any],
    schema: list[Field],
    description: str,
) -> OnDemandFeatureView:
    """An on-demand view in python mode, its UDF serialized by value (Feast's convention)."""
    by_value = types.FunctionType(udf.__code__, udf.__globals__, udf.__name__)
    by_value.__module__ = "__main__"
    by_value.__doc__ = udf.__doc__
    return OnDemandFeatureView(
        name=udf.__name__,
        sources=sources,
        schema=schema,
        mode="python",
        udf=by_value,
        udf_string=_UDF_SOURCES[udf.__name__],
        description=description,
    )


def _request_features(customer_spending: FeatureView) -> list[OnDemandFeatureView]:
    request = RequestSource(
        name="transaction_request",
        schema=[
            Field(name="tx_datetime", dtype=UnixTimestamp),
            Field(name="amount", dtype=Float64),
        ],
        description="What the payment request itself carries.",
    )
    habits = customer_spending[
        ["customer_avg_amount_7d", "customer_avg_amount_30d", "customer_std_amount_30d"]
    ]
    time_features = _on_demand_view(
        transaction_time_features,
        [request],
        [Field(name="tx_during_night", dtype=Int64), Field(name="tx_during_weekend", dtype=Int64)],
        "Night and weekend flags of the transaction's timestamp (UTC).",
    )
    amount_features = _on_demand_view(
        amount_vs_customer_habits,
        [request, habits],
        [
            Field(name="amount_to_avg_7d", dtype=Float64),
            Field(name="amount_to_avg_30d", dtype=Float64),
            Field(name="amount_zscore_30d", dtype=Float64),
        ],
        "Amount over the customer's averages and its z-score; None without history.",
    )
    return [time_features, amount_features]


def feast_definitions(features_dir: Path) -> FeastDefinitions:
    """Build the Feast objects for the feature tables stored under ``features_dir``."""
    entities = [_entity(t) for t in FEATURE_TABLES]
    views = [
        _feature_view(t, e, features_dir) for t, e in zip(FEATURE_TABLES, entities, strict=True)
    ]
    request_views = _request_features(views[0])
    views += _realtime_views(entities, features_dir)
    service = FeatureService(
        name=FEATURE_SERVICE,
        features=[*views, *request_views],
        tags={"version": definitions_version()},
        description="The fraud model's features: read by training_set and by the serving path.",
    )
    return FeastDefinitions(entities, views, request_views, service)
