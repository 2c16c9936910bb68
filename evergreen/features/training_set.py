"""Training sets: labelled transactions of a window, their features as of each transaction.

A plain function of a warehouse connection and a Feast store, callable from the asset, the tests
and the benchmark. The entity frame holds the transactions of the window whose label had landed
by the cut-off day (the newest landed label wins); Feast joins each one, point in time, to the
feature rows known at its timestamp, through the same FeatureService the serving path reads.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

    from evergreen.settings import EvergreenSettings

ENTITY_FRAME_SQL = """
WITH landed AS (
    SELECT
        transaction_id,
        arg_max(label, partition_date) AS label,
        max(partition_date) AS label_landed_on
    FROM raw_labels
    WHERE partition_date >= $first_day AND partition_date <= $cutoff
    GROUP BY transaction_id
)
SELECT
    t.transaction_id, t.customer_id, t.terminal_id,
    t.tx_datetime AS event_timestamp, t.tx_datetime, t.amount,
    t.region, t.channel, t.card_type,
    l.label, l.label_landed_on
FROM raw_transactions AS t
JOIN landed AS l USING (transaction_id)
WHERE t.partition_date >= $first_day AND t.partition_date <= $last_day
ORDER BY t.transaction_id
"""


@dataclass(frozen=True)
class TrainingWindow:
    """Transactions of days ``first_day..last_day`` with labels landed by ``cutoff``."""

    first_day: dt.date
    last_day: dt.date
    cutoff: dt.date

    @classmethod
    def ending_at(cls, cutoff: dt.date, days: int, label_delay_days: int) -> TrainingWindow:
        """The ``days`` newest days whose labels should have landed by ``cutoff``."""
        last_day = cutoff - dt.timedelta(days=label_delay_days)
        return cls(last_day - dt.timedelta(days=days - 1), last_day, cutoff)

    def __str__(self) -> str:
        return f"{self.first_day}..{self.last_day} (labels landed by {self.cutoff})"


def labelled_transactions(conn: duckdb.DuckDBPyConnection, window: TrainingWindow) -> pd.DataFrame:
    """The entity frame: labelled transactions of the window, timestamps in UTC."""
    params = {"first_day": window.first_day, "last_day": window.last_day, "cutoff": window.cutoff}
    frame = conn.sql(ENTITY_FRAME_SQL, params=params).df()
    for column in ("event_timestamp", "tx_datetime"):
        frame[column] = frame[column].dt.tz_localize("UTC")
    return frame


def daily_feature_refs(store: FeatureStore, service: FeatureService) -> list[str]:
    """The service's feature references except the request-time views' (which Feast cannot
    join: they are computed from the transactions), on-demand views included: what Feast's
    own ``get_historical_features`` can retrieve of the service."""
    from evergreen.features.realtime import is_realtime

    computed = {v.name for v in store.list_feature_views() if is_realtime(v)}
    return [
        f"{p.name_to_use()}:{f.name}"
        for p in service.feature_view_projections
        if p.name not in computed
        for f in p.features
    ]


class NoLabelledTransactions(ValueError):
    """A window with no transaction whose label had landed by its cut-off."""


def window_training_set(
    settings: EvergreenSettings,
    window: TrainingWindow,
    service: FeatureService | str | None = None,
    store: FeatureStore | None = None,
) -> tuple[pd.DataFrame, pa.Table]:
    """The entity frame of ``window`` (its labelled transactions, read from the settings'
    warehouse) and its training set through ``service`` (default: the fraud FeatureService),
    the request-time views computed from the same read-only connection: the one way the asset,
    the oracle, the benchmarks and the tests build one."""
    from evergreen.features.feast_client import feature_store, fraud_feature_service
    from evergreen.warehouse import warehouse

    store = store or feature_store(settings)
    service = service or fraud_feature_service(store)
    with warehouse(settings, read_only=True) as conn:
        entities = labelled_transactions(conn, window)
        if entities.empty:
            raise NoLabelledTransactions(f"No labelled transactions in {window}.")
        return entities, build_training_set(store, entities, service, warehouse=conn)


def build_training_set(
    store: FeatureStore,
    entities: pd.DataFrame,
    service: FeatureService | str,
    warehouse: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Point-in-time join of the entity frame to the FeatureService, ordered by transaction.

    The daily views: the same table as ``get_historical_features(features=service)``, in two
    steps: Feast's join of the service's feature views, then the service's on-demand views on
    just the columns they read (``on_demand.with_on_demand_features``: Feast's own job would
    convert the whole joined table to Python objects once per view, most of a training set's
    time). The request-time views (``realtime``): computed from the ``warehouse``'s
    transactions at each transaction's own time by ``realtime.training_features``, the values
    the online state held when it was scored."""
    from evergreen.features.on_demand import with_on_demand_features
    from evergreen.features.realtime import is_realtime

    if isinstance(service, str):
        service = store.get_feature_service(service)
    on_demand = {v.name: v for v in store.list_on_demand_feature_views()}
    computed = {v.name for v in store.list_feature_views() if is_realtime(v)}
    refs = [
        f"{p.name_to_use()}:{f.name}"
        for p in service.feature_view_projections
        if p.name not in on_demand and p.name not in computed
        for f in p.features
    ]
    table = store.get_historical_features(entity_df=entities, features=refs).to_arrow()
    for projection in service.feature_view_projections:
        if projection.name in on_demand:
            wanted = {f.name for f in projection.features}
            table = with_on_demand_features(table, on_demand[projection.name], wanted)
    table = table.sort_by("transaction_id")
    wanted = [
        f.name for p in service.feature_view_projections if p.name in computed for f in p.features
    ]
    if wanted:
        table = _with_realtime(table, wanted, warehouse)
    return table


def _with_realtime(
    table: pa.Table, wanted: list[str], warehouse: duckdb.DuckDBPyConnection | None
) -> pa.Table:
    """``table`` (ordered by transaction id) with the request-time features appended."""
    from evergreen.features.realtime import training_features

    if warehouse is None:
        raise ValueError(
            "The FeatureService has request-time views: build_training_set needs the "
            "warehouse connection (warehouse=...) to compute them from its transactions."
        )
    stamps = table["tx_datetime"] if "tx_datetime" in table.column_names else None
    stamps = stamps if stamps is not None else table["event_timestamp"]
    first = pc.min(stamps).as_py().date()
    last = pc.max(stamps).as_py().date()
    computed = training_features(warehouse, table["transaction_id"], first, last)
    if not computed["transaction_id"].equals(table["transaction_id"]):
        raise ValueError(
            f"{table.num_rows - computed.num_rows} transaction(s) of the entity frame are not "
            "in the warehouse's raw_transactions: their request-time features are unknown"
        )
    for name in wanted:
        table = table.append_column(name, computed[name])
    return table
