"""Raw daily partitions: the landing zone's files of a day, validated and loaded into DuckDB."""

import datetime as dt

from dagster import (
    AssetDep,
    AssetExecutionContext,
    DataVersion,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    TimeWindowPartitionMapping,
    asset,
)

from assets.partitions import RAW_POOL, daily_partitions
from assets.raw_quality import check_results, check_specs
from evergreen.ingest.contracts import FEEDS, PROVENANCE_COLUMNS
from evergreen.ingest.partition import IngestReport, ingest_partition
from evergreen.metadata import markdown_table
from evergreen.resources import EvergreenResource
from evergreen.settings import get_settings

CODE_VERSION = "raw-ingest-1"

_FILES_SCHEMA = TableSchema(
    columns=[
        TableColumn("file", "string"),
        TableColumn("status", "string"),
        TableColumn("rows", "int", description="-1: unknown (the file cannot be read)"),
        TableColumn("size_bytes", "int"),
        TableColumn("sha256", "string"),
        TableColumn("landed_at", "string"),
        TableColumn("reason", "string"),
    ]
)


def _column_schema(feed: str) -> TableSchema:
    cols = [*FEEDS[feed].columns, *PROVENANCE_COLUMNS]
    return TableSchema(
        columns=[TableColumn(c.name, c.type, description=c.description) for c in cols]
    )


def _files_table(report: IngestReport) -> MetadataValue:
    records = [
        TableRecord(
            {
                "file": v.file.name,
                "status": "loaded" if v.accepted else "quarantined",
                "rows": v.rows if v.rows is not None else -1,
                "size_bytes": v.file.size_bytes,
                "sha256": v.file.sha256,
                "landed_at": v.file.landed_at.isoformat(timespec="seconds"),
                "reason": "; ".join(x.message for x in v.violations),
            }
        )
        for v in report.verdicts
    ]
    return MetadataValue.table(records, schema=_FILES_SCHEMA)


def _summary(report: IngestReport) -> str:
    title = (
        f"**{report.feed} {report.day}**: {report.rows_loaded:,} rows loaded from "
        f"{len(report.accepted)} file(s); {len(report.rejected)} file(s) "
        f"({report.rows_quarantined:,} rows) quarantined."
    )
    rows = [
        [
            v.file.name,
            "loaded" if v.accepted else "**quarantined**",
            f"{v.rows:,}" if v.rows is not None else "unknown",
            f"`{v.file.sha256[:12]}`",
        ]
        for v in report.verdicts
    ]
    table = markdown_table(["file", "status", "rows", "sha256"], rows, align="llr")
    return title + "\n\n" + table


def _materialize(context: AssetExecutionContext, evergreen: EvergreenResource, feed: str):
    settings = evergreen.settings()
    day = dt.date.fromisoformat(context.partition_key)
    report = ingest_partition(settings, feed, day)
    context.log.info(
        f"{feed} {day}: {report.rows_loaded:,} rows loaded, "
        f"{len(report.rejected)} file(s) quarantined"
    )
    landed = [v.file.landed_at for v in report.verdicts]
    metadata = {
        "dagster/row_count": report.rows_loaded,
        "dagster/column_schema": _column_schema(feed),
        "rows_landed": report.rows_landed,
        "rows_quarantined": report.rows_quarantined,
        "bytes_landed": report.bytes_landed,
        "files_rows_unknown": len(report.files_rows_unknown),
        "files_quarantined": len(report.rejected),
        "source_files": _files_table(report),
        "summary": MetadataValue.md(_summary(report)),
        "warehouse": MetadataValue.path(str(settings.warehouse_path)),
        "data_version": report.data_version,
    }
    if landed:
        metadata["landed_at"] = MetadataValue.timestamp(max(landed).replace(tzinfo=dt.UTC))
    if report.label_share is not None:
        metadata["fraud_share"] = MetadataValue.float(report.label_share)
    return MaterializeResult(
        metadata=metadata,
        check_results=check_results(report, FEEDS[feed].table),
        data_version=DataVersion(report.data_version),
    )


@asset(
    partitions_def=daily_partitions,
    pool=RAW_POOL,
    kinds={"duckdb", "parquet"},
    group_name="raw",
    code_version=CODE_VERSION,
    check_specs=check_specs("transactions", "raw_transactions"),
)
def raw_transactions(context: AssetExecutionContext, evergreen: EvergreenResource):
    """Card transactions of one day (no labels), loaded from the landing zone."""
    return _materialize(context, evergreen, "transactions")


# Labels landing on day D are, in the normal feed, about the transactions of D - delay.
_label_lineage = TimeWindowPartitionMapping(
    start_offset=-get_settings().label_delay_days,
    end_offset=-get_settings().label_delay_days,
    allow_nonexistent_upstream_partitions=True,
)


@asset(
    partitions_def=daily_partitions,
    pool=RAW_POOL,
    kinds={"duckdb", "parquet"},
    group_name="raw",
    code_version=CODE_VERSION,
    deps=[AssetDep(raw_transactions, partition_mapping=_label_lineage)],
    check_specs=check_specs("labels", "raw_labels"),
)
def raw_labels(context: AssetExecutionContext, evergreen: EvergreenResource):
    """Fraud labels that landed on one day (about transactions of earlier days)."""
    return _materialize(context, evergreen, "labels")
