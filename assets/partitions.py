"""Partitioning shared by every daily asset."""

from dagster import DailyPartitionsDefinition

from evergreen.settings import get_settings

_settings = get_settings()

daily_partitions = DailyPartitionsDefinition(
    start_date=_settings.start_date.isoformat(),
    end_date=_settings.end_date.isoformat() if _settings.end_date else None,
)

# DuckDB takes one writer per file: every asset that writes the warehouse runs in this pool,
# whose limit the instance config (dagster.yaml) sets to 1.
WAREHOUSE_POOL = "duckdb_warehouse"
