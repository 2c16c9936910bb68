"""The Feast side of the feature layer: definitions, the online store, training sets.

Feast is imported inside the asset bodies only (``import feast`` takes seconds): loading the code
location, sensor ticks and the UI never pay for it.
"""

import datetime as dt
import re
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AutomationCondition,
    Config,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    TimeWindowPartitionMapping,
    asset,
)

from assets.automation import refresh_on_upstream_change
from assets.features import customer_spending_features, terminal_risk_features
from assets.partitions import daily_partitions
from assets.raw_data import raw_labels, raw_transactions
from evergreen.features.repo import FEATURE_SERVICE, FEATURE_TABLES, definitions_version
from evergreen.features.tables import fingerprint, known_at, write_table
from evergreen.metadata import markdown_table
from evergreen.resources import EvergreenResource
from evergreen.settings import EvergreenSettings, get_settings

# The file registry and the SQLite online store take one writer at a time.
FEAST_POOL = "feast_registry"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class FeatureDefinitionsConfig(Config):
    force: bool = False  # apply even if this version is already in the registry


@asset(
    kinds={"feast"},
    group_name="features",
    pool=FEAST_POOL,
    code_version=definitions_version(),
    automation_condition=AutomationCondition.on_missing()
    | AutomationCondition.code_version_changed(),
)
def feature_definitions(
    context: AssetExecutionContext, config: FeatureDefinitionsConfig, evergreen: EvergreenResource
):
    """`feast apply` of the entities, feature views, on-demand views and the FeatureService,
    skipped when this definitions version is already applied; the code version is its hash."""
    from evergreen.features.feast_client import apply_definitions

    settings = evergreen.settings()
    report = apply_definitions(settings, force=config.force)
    context.log.info(
        f"definitions {report.version}: {'applied' if report.applied else 'unchanged'}"
    )
    views = [
        [fv.name, ", ".join(fv.entities), fv.ttl, len(fv.features)]
        for fv in report.definitions.feature_views
    ]
    diff = _ANSI.sub("", report.registry_diff)[:4000] or "(already applied: nothing to do)"
    return MaterializeResult(
        metadata={
            "applied": report.applied,
            "definitions_version": report.version,
            "feature_service": FEATURE_SERVICE,
            "feature_views": MetadataValue.md(
                markdown_table(["view", "entities", "ttl", "features"], views, align="lllr")
            ),
            "registry": MetadataValue.path(str(settings.feast_registry_path)),
            "registry_diff": MetadataValue.md(f"```\n{diff}\n```"),
        },
        data_version=DataVersion(report.version),
    )


def _require_applied(settings: EvergreenSettings) -> None:
    from evergreen.features.feast_client import applied_version

    if applied_version(settings) != definitions_version():
        raise Failure(
            f"Feature definitions {definitions_version()} are not applied to "
            f"{settings.feast_registry_path}: materialize feature_definitions first."
        )


@asset(
    partitions_def=daily_partitions,
    deps=[feature_definitions, customer_spending_features, terminal_risk_features],
    kinds={"feast", "sqlite"},
    group_name="features",
    pool=FEAST_POOL,
    code_version="online-1",
    automation_condition=refresh_on_upstream_change(),
)
def online_features(context: AssetExecutionContext, evergreen: EvergreenResource):
    """The day's feature rows (known at the next midnight) loaded into the online store.

    Only the newest day goes online: materializing an older day after a newer one would put
    older values over newer ones, so such a partition is recorded as skipped."""
    from evergreen.features.feast_client import feature_store, materialize_day, newest_online

    settings = evergreen.settings()
    _require_applied(settings)
    day = dt.date.fromisoformat(context.partition_key)
    store = feature_store(settings)
    newest = newest_online(store)
    if newest is not None and newest > known_at(day):
        context.log.info(f"{day}: skipped, rows known at {newest} are already online")
        return MaterializeResult(metadata={"skipped": True, "newest_online": str(newest)})
    rows = {t.name: _partition_rows(settings, t, day) for t in FEATURE_TABLES}
    began = time.perf_counter()
    materialize_day(store, day)
    seconds = time.perf_counter() - began
    entities = sum(rows.values())
    return MaterializeResult(
        metadata={
            "skipped": False,
            "dagster/row_count": entities,
            **{f"rows_{name}": n for name, n in rows.items()},
            "seconds": round(seconds, 3),
            "entities_per_s": round(entities / seconds) if seconds else 0,
            "event_timestamp": MetadataValue.timestamp(known_at(day)),
            "online_store": MetadataValue.path(str(settings.online_store_path)),
        }
    )


@asset(
    partitions_def=daily_partitions,
    deps=[feature_definitions, raw_transactions],
    kinds={"feast", "sqlite"},
    group_name="features",
    pool=FEAST_POOL,
    code_version="transaction-state-1",
    automation_condition=refresh_on_upstream_change(),
)
def transaction_state(context: AssetExecutionContext, evergreen: EvergreenResource):
    """The day's landed transactions reconciled into the request-time state of the online
    store: those that never reached /predict are added, none twice (the id is the key), events
    older than the retention are dropped; the request-time windows then hold the whole day."""
    from evergreen.features.feast_client import feature_store
    from evergreen.features.realtime import RETENTION_S
    from evergreen.features.realtime_state import reconcile_day
    from evergreen.features.sqlite_online_store import realtime_state_of
    from evergreen.warehouse import warehouse

    settings = evergreen.settings()
    _require_applied(settings)
    day = dt.date.fromisoformat(context.partition_key)
    state = realtime_state_of(feature_store(settings).config)
    began = time.perf_counter()
    try:
        with warehouse(settings, read_only=True) as conn:
            counts = reconcile_day(state, conn, day)
        data_time = state.data_time()
    finally:
        state.close()
    seconds = time.perf_counter() - began
    context.log.info(f"{day}: {counts} in {seconds:.2f} s")
    return MaterializeResult(
        metadata={
            "dagster/row_count": counts["rows"],
            **{f"transactions_{name}": n for name, n in counts.items() if name != "rows"},
            "seconds": round(seconds, 3),
            "transactions_per_s": round(counts["rows"] / seconds) if seconds else 0,
            "data_time": MetadataValue.timestamp(data_time) if data_time else "empty",
            "retention_days": RETENTION_S / 86_400,
            "online_store": _state_location(state),
        }
    )


def _state_location(state) -> MetadataValue:
    """Where the state is: the online store's SQLite file, or its Redis (and key prefix)."""
    path = getattr(state, "path", None)
    if path is not None:
        return MetadataValue.path(str(path))
    pool = state.client.connection_pool.connection_kwargs
    return MetadataValue.text(f"redis {pool.get('host')}:{pool.get('port')} {state.prefix}*")


def _partition_rows(settings: EvergreenSettings, table, day: dt.date) -> int:
    path = table.partition_path(settings.features_dir, day)
    if not path.exists():
        raise Failure(f"{table.name} has no partition {day} at {path}: materialize it first.")
    return pq.read_metadata(path).num_rows


def _offset_mapping(start: int, end: int) -> TimeWindowPartitionMapping:
    return TimeWindowPartitionMapping(
        start_offset=start, end_offset=end, allow_nonexistent_upstream_partitions=True
    )


# Cut-off day C: transactions of [C - delay - window + 1, C - delay], labels landed by C; a
# transaction of day X joins the feature rows of day X - 1.
_DELAY, _WINDOW = get_settings().label_delay_days, get_settings().training_window_days
_TX_DAYS = _offset_mapping(-(_DELAY + _WINDOW - 1), -_DELAY)
_LABEL_DAYS = _offset_mapping(-(_DELAY + _WINDOW - 1), 0)
_FEATURE_DAYS = _offset_mapping(-(_DELAY + _WINDOW), -(_DELAY + 1))


@asset(
    partitions_def=daily_partitions,
    deps=[
        feature_definitions,
        AssetDep(customer_spending_features, partition_mapping=_FEATURE_DAYS),
        AssetDep(terminal_risk_features, partition_mapping=_FEATURE_DAYS),
        AssetDep(raw_transactions, partition_mapping=_TX_DAYS),
        AssetDep(raw_labels, partition_mapping=_LABEL_DAYS),
    ],
    kinds={"feast", "duckdb", "parquet"},
    group_name="features",
    code_version="training-set-1",
)
def training_set(context: AssetExecutionContext, evergreen: EvergreenResource):
    """Labelled transactions of the training window ending a label delay before the cut-off
    day (the partition), with labels as known at the cut-off and features point in time,
    through the FeatureService that serving reads."""
    from evergreen.features.feast_client import feature_store, fraud_feature_service
    from evergreen.features.training_set import (
        NoLabelledTransactions,
        TrainingWindow,
        window_training_set,
    )

    settings = evergreen.settings()
    _require_applied(settings)
    cutoff = dt.date.fromisoformat(context.partition_key)
    window = TrainingWindow.ending_at(
        cutoff, settings.training_window_days, settings.label_delay_days
    )
    store = feature_store(settings)
    service = fraud_feature_service(store)
    try:
        entities, table = window_training_set(settings, window, service, store)
    except NoLabelledTransactions as exc:
        raise Failure(str(exc)) from None
    path = settings.training_set_path(cutoff)
    write_table(table, path)
    digest = fingerprint(table)
    features = [c for c in table.column_names if c not in entities.columns]
    return MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "label_share": MetadataValue.float(pc.mean(table["label"]).as_py()),
            "frauds": int(pc.sum(table["label"]).as_py()),
            "window": str(window),
            "first_day": str(window.first_day),
            "last_day": str(window.last_day),
            "cutoff": str(window.cutoff),
            "fingerprint": digest,
            "feature_service": service.name,
            "feature_service_version": service.tags.get("version", ""),
            "features": MetadataValue.md(_feature_table(table, features)),
            "path": MetadataValue.path(str(path)),
        },
        data_version=DataVersion(digest),
    )


def _feature_table(table: pa.Table, features: list[str]) -> str:
    """Markdown: each feature's share of nulls (no row within the TTL) and its mean."""
    rows = []
    for name in features:
        column = table[name]
        mean = pc.mean(column).as_py()
        shown = "" if mean is None else f"{mean:,.4g}"
        rows.append([name, f"{column.null_count / table.num_rows:.1%}", shown])
    return markdown_table(["feature", "null share", "mean"], rows, align="lrr")
