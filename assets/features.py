"""Daily feature tables: DuckDB SQL over the raw partitions of a window, written as Parquet.

Each partition D reads only the raw partitions its windows need (flat cost in history) and
replaces ``features/<table>/date=D/part-0.parquet``, whose rows become known at D+1 00:00 UTC.
"""

import datetime as dt
import hashlib

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetDep,
    AssetExecutionContext,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    TimeWindowPartitionMapping,
    asset,
)

from assets.automation import refresh_on_upstream_change
from assets.partitions import daily_partitions
from assets.raw_data import raw_labels, raw_transactions
from evergreen.features.customer_spending import (
    CUSTOMER_SPENDING,
    CUSTOMER_SPENDING_SQL,
    customer_spending_rows,
)
from evergreen.features.tables import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    FeatureTable,
    fingerprint,
    known_at,
    write_partition,
)
from evergreen.features.terminal_risk import (
    TERMINAL_RISK,
    TERMINAL_RISK_SQL,
    terminal_risk_rows,
)
from evergreen.metadata import markdown_table
from evergreen.resources import EvergreenResource
from evergreen.settings import EvergreenSettings
from evergreen.warehouse import warehouse

# Raw partitions (D - 31, D]: the 30-day window and the day a customer or terminal leaves it.
_WINDOW_OF_RAW = TimeWindowPartitionMapping(
    start_offset=-30, end_offset=0, allow_nonexistent_upstream_partitions=True
)


def _code_version(sql: str) -> str:
    return "features-1-" + hashlib.sha256(sql.encode()).hexdigest()[:10]


def _column_schema(table: FeatureTable) -> TableSchema:
    return TableSchema(columns=[TableColumn(f.name, str(f.type)) for f in table.schema])


def _summary(table: FeatureTable, rows: pa.Table, day: dt.date) -> str:
    title = (
        f"**{table.name} {day}**: {rows.num_rows:,} {table.entity}s, known from "
        f"{known_at(day):%Y-%m-%d %H:%M} UTC."
    )
    lines = []
    for name in table.features:
        column = rows[name]
        zeros = pc.sum(pc.equal(column, 0)).as_py() or 0
        share = zeros / rows.num_rows if rows.num_rows else 0.0
        mean, top = pc.mean(column).as_py(), pc.max(column).as_py()
        lines.append([name, f"{mean or 0:,.4g}", f"{top or 0:,.4g}", f"{share:.1%}"])
    columns = ["feature", "mean", "max", "zero share"]
    return title + "\n\n" + markdown_table(columns, lines, align="lrrr")


def _customer_spending(conn, day, created_at, settings: EvergreenSettings) -> pa.Table:
    return customer_spending_rows(conn, day, created_at)


def _terminal_risk(conn, day, created_at, settings: EvergreenSettings) -> pa.Table:
    return terminal_risk_rows(conn, day, created_at, settings.label_lookback_days)


def _materialize_table(
    context: AssetExecutionContext, evergreen: EvergreenResource, table: FeatureTable, compute
) -> MaterializeResult:
    """Compute one partition of ``table`` (read-only on the warehouse) and write its file."""
    settings = evergreen.settings()
    day = dt.date.fromisoformat(context.partition_key)
    created_at = dt.datetime.now(dt.UTC)
    with warehouse(settings, read_only=True) as conn:
        rows = compute(conn, day, created_at, settings)
    path = write_partition(table, rows, settings.features_dir, day)
    context.log.info(f"{table.name} {day}: {rows.num_rows:,} rows -> {path}")
    version = fingerprint(rows.drop_columns([CREATED_TIMESTAMP]))
    return MaterializeResult(
        metadata={
            "dagster/row_count": rows.num_rows,
            "dagster/column_schema": _column_schema(table),
            "summary": MetadataValue.md(_summary(table, rows, day)),
            "path": MetadataValue.path(str(path)),
            EVENT_TIMESTAMP: MetadataValue.timestamp(known_at(day)),
            CREATED_TIMESTAMP: MetadataValue.timestamp(created_at),
            "data_version": version,
        },
        data_version=DataVersion(version),
    )


@asset(
    partitions_def=daily_partitions,
    deps=[AssetDep(raw_transactions, partition_mapping=_WINDOW_OF_RAW)],
    kinds={"duckdb", "parquet"},
    group_name="features",
    code_version=_code_version(CUSTOMER_SPENDING_SQL),
    automation_condition=refresh_on_upstream_change(),
)
def customer_spending_features(context: AssetExecutionContext, evergreen: EvergreenResource):
    """Per customer, at the end of the day: transactions and average amount over 1, 7 and 30
    days, and the 30-day spread of amounts (from the raw transactions of the last 31 days)."""
    return _materialize_table(context, evergreen, CUSTOMER_SPENDING, _customer_spending)


@asset(
    partitions_def=daily_partitions,
    deps=[AssetDep(raw_labels, partition_mapping=_WINDOW_OF_RAW)],
    kinds={"duckdb", "parquet"},
    group_name="features",
    code_version=_code_version(TERMINAL_RISK_SQL),
    automation_condition=refresh_on_upstream_change(),
)
def terminal_risk_features(context: AssetExecutionContext, evergreen: EvergreenResource):
    """Per terminal, at the end of the day: labelled transactions and fraud share over the
    labels that landed in the last 1, 7 and 30 days (only labels known by then)."""
    return _materialize_table(context, evergreen, TERMINAL_RISK, _terminal_risk)
