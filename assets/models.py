"""The model layer's first asset: a candidate trained on each day's training set.

CatBoost and BentoML are imported inside the asset body only, so the code location loads fast.
"""

import datetime as dt

from dagster import (
    AssetExecutionContext,
    AssetRecordsFilter,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.feast_features import training_set
from assets.partitions import daily_partitions
from evergreen.models.code_version import training_code_version
from evergreen.resources import EvergreenResource
from evergreen.settings import EvergreenSettings

# One training at a time: CatBoost takes the machine's cores (and a fixed thread count).
TRAINING_POOL = "model_training"


@asset(
    partitions_def=daily_partitions,
    deps=[training_set],
    kinds={"catboost", "bentoml"},
    group_name="models",
    pool=TRAINING_POOL,
    code_version=training_code_version(),
)
def candidate_model(context: AssetExecutionContext, evergreen: EvergreenResource):
    """CatBoost trained on the cut-off day's training set: the newest evaluation days held out,
    early stopping and the operating threshold (max F1) on the validation days before them;
    while a drift is confirmed, adapted to it (fewer held-out days, validation on a share of
    customers, the drift's days weighted up: ``evergreen.models.training.Adaptation``).
    Registered in BentoML's model store and the ledger as a candidate; retraining on the same
    data gives the same artifact, recorded on the existing model rather than duplicated."""
    import pyarrow.parquet as pq

    from evergreen.features.tables import fingerprint
    from evergreen.loop.retrain_policy import training_adaptation
    from evergreen.models.registry import ModelRegistry
    from evergreen.models.training import train_candidate

    settings = evergreen.settings()
    cutoff = dt.date.fromisoformat(context.partition_key)
    path = settings.training_set_path(cutoff)
    if not path.exists():
        raise Failure(f"No training set for cut-off {cutoff} at {path}: materialize it first.")
    table = pq.read_table(path)
    frame = table.to_pandas()
    adaptation = training_adaptation(settings, cutoff)
    context.log.info(f"training: {adaptation.reason}")
    try:
        split = adaptation.split(frame)
        trained = train_candidate(
            split.train, split.validation, seed=settings.seed, adaptation=adaptation
        )
    except ValueError as error:
        raise Failure(f"Cannot train on the training set of {cutoff} ({path}): {error}") from None
    trained.provenance = _provenance(context, settings, cutoff, fingerprint(table))
    registry = ModelRegistry(settings)
    record = registry.register(
        trained,
        actor="dagster",
        reason=f"trained on the training set of cut-off {cutoff} (run {context.run.run_id[:8]})",
    )
    if record.retrained_identical:
        context.log.info(f"retrained: identical to {record.tag} (status {record.status.value})")
    return MaterializeResult(
        metadata={
            **_metadata(settings, trained, split, record, cutoff),
            "artifact": MetadataValue.path(str(registry.artifact_path(record.tag))),
        },
        data_version=DataVersion(record.sha256),
    )


def _provenance(
    context: AssetExecutionContext, settings: EvergreenSettings, cutoff: dt.date, digest: str
):
    """Where the data came from: the training set's own materialization when it describes this
    file (same fingerprint), otherwise what the file and the current definitions say."""
    from evergreen.features.repo import FEATURE_SERVICE, definitions_version
    from evergreen.features.training_set import TrainingWindow
    from evergreen.models.training import Provenance

    upstream = _upstream_metadata(context, cutoff)
    if upstream.get("fingerprint") != digest:
        if upstream:
            context.log.warning(
                f"training set of {cutoff} was rewritten since its last materialization "
                f"(fingerprint {upstream.get('fingerprint')} there, {digest} now)"
            )
        window = TrainingWindow.ending_at(
            cutoff, settings.training_window_days, settings.label_delay_days
        )
        upstream = {
            "window": str(window),
            "feature_service": FEATURE_SERVICE,
            "feature_service_version": definitions_version(),
        }
    return Provenance(
        cutoff=cutoff.isoformat(),
        training_window=str(upstream["window"]),
        data_fingerprint=digest,
        feature_service=str(upstream["feature_service"]),
        feature_service_version=str(upstream["feature_service_version"]),
        code_version=training_code_version(),
    )


def _upstream_metadata(context: AssetExecutionContext, cutoff: dt.date) -> dict:
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=training_set.key, asset_partitions=[cutoff.isoformat()]),
        limit=1,
    ).records
    if not records or records[0].asset_materialization is None:
        return {}
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def _metadata(settings: EvergreenSettings, trained, split, record, cutoff: dt.date) -> dict:
    from evergreen.metadata import plot_metadata
    from evergreen.models.training_report import (
        importance_table,
        metrics_table,
        params_table,
        split_table,
        write_learning_curve,
    )

    plot = write_learning_curve(
        trained, settings.reports_dir / "models" / f"cutoff={cutoff}" / "learning_curve.png"
    )
    rows = {name: len(part) for name, part in split.parts().items()}
    frauds = {name: int(part["label"].sum()) for name, part in split.parts().items()}
    p = trained.provenance
    return {
        "model_tag": record.tag,
        "status": record.status.value,
        "retrained_identical_to": record.tag if record.retrained_identical else "",
        "sha256": record.sha256,
        **{f"rows_{name}": n for name, n in rows.items()},
        "split": MetadataValue.md(split_table(rows, frauds, split.days())),
        "adaptation": trained.adaptation.get("reason", ""),
        "adapted_to_drift": bool(trained.adaptation.get("recent_from")),
        "threshold": MetadataValue.float(trained.threshold),
        "threshold_rule": trained.threshold_rule,
        **{
            f"validation_{k}": MetadataValue.float(v) for k, v in trained.validation_metrics.items()
        },
        "validation_metrics": MetadataValue.md(metrics_table(trained.validation_metrics)),
        "best_iteration": trained.best_iteration,
        "training_seconds": MetadataValue.float(trained.training_seconds),
        "seed": trained.seed,
        "params": MetadataValue.md(params_table(trained.params)),
        "feature_importances": MetadataValue.md(importance_table(trained.feature_importances)),
        **plot_metadata(settings, "learning_curve", plot, "learning curve"),
        "training_window": p.training_window,
        "data_fingerprint": p.data_fingerprint,
        "feature_service": p.feature_service,
        "feature_service_version": p.feature_service_version,
        "code_version": p.code_version,
        "library_versions": MetadataValue.json(trained.library_versions),
    }
