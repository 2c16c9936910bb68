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
# On the cluster profile a raw partition is a file of its own on the shared store, written by
# no other step (evergreen.warehouse): the raw assets take no pool there, so that two worker
# hosts write two partitions at once.
RAW_POOL = None if _settings.is_cluster else WAREHOUSE_POOL
