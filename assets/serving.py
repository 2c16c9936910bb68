"""Serving: the champion's bento and its infra validation, and the live prediction log.

``bento`` builds ``fraud_detection:<model version>`` for the champion after the newest
promotion decision; its BLOCKING check ``serves_like_offline`` starts the built bento for real,
replays recent transactions and fails, with the reason, unless it serves exactly what the
registry's model computes offline within the latency budget: nothing deploys a bento that
failed it. ``live_predictions`` loads a day of the replicas' prediction log into the warehouse.

BentoML, Feast and CatBoost are imported inside the bodies: loading the code location stays fast.
"""

import datetime as dt

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    Failure,
    LastPartitionMapping,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from assets.automation import refresh_on_upstream_change
from assets.partitions import WAREHOUSE_POOL, daily_partitions
from evergreen.metadata import markdown_table
from evergreen.resources import EvergreenResource

ACTOR = "dagster:bento"


@asset(
    partitions_def=daily_partitions,
    # A day's payments are all served once its raw transactions land: then its log is complete.
    deps=[AssetKey("raw_transactions")],
    kinds={"duckdb"},
    group_name="serving",
    pool=WAREHOUSE_POOL,
    code_version="live-predictions-1",
    automation_condition=refresh_on_upstream_change(),
)
def live_predictions(context: AssetExecutionContext, evergreen: EvergreenResource):
    """The day's prediction log (every replica's file of that transaction day) loaded into the
    warehouse table ``live_predictions``; the day's rows are replaced in one transaction."""
    from evergreen.serving.live_predictions import load_day
    from evergreen.serving.live_schema import TABLE
    from evergreen.serving.prediction_log import day_dir
    from evergreen.warehouse import warehouse

    settings = evergreen.settings()
    day = dt.date.fromisoformat(context.partition_key)
    with warehouse(settings) as conn:
        load = load_day(conn, settings, day)
    if load.skipped:
        context.log.warning(f"{day}: {load.skipped} incomplete log line(s) skipped")
    models = [[f"`{tag}`", f"{n:,}"] for tag, n in load.by_model.items()] or [["(none)", 0]]
    return MaterializeResult(
        metadata={
            "dagster/row_count": load.rows,
            "table": TABLE,
            "files": len(load.files),
            "lines_skipped": load.skipped,
            "model_versions": MetadataValue.md(
                markdown_table(["model", "predictions"], models, align="lr")
            ),
            **{f"score_{k}": MetadataValue.float(float(v)) for k, v in load.score.items()},
            "log_folder": MetadataValue.path(str(day_dir(settings.predictions_dir, day))),
        }
    )


@asset(
    deps=[AssetDep(AssetKey("promotion_decision"), partition_mapping=LastPartitionMapping())],
    kinds={"bentoml"},
    group_name="serving",
    code_version="bento-1",
)
def bento(context: AssetExecutionContext, evergreen: EvergreenResource):
    """``bentoml build`` of the champion: its artifact's sha256 verified first, the bento's
    version equal to the model's, Python dependencies pinned to the lock. Reused when already
    built from the same code."""
    from evergreen.models.registry import ModelRegistry
    from evergreen.serving.bento import build_bento, model_size_bytes
    from evergreen.serving.containers import container_command

    settings = evergreen.settings()
    champion = ModelRegistry(settings).champion()
    if champion is None:
        raise Failure("No champion in the ledger: promote a model first (promotion_decision).")
    built = build_bento(settings, champion.tag)
    context.log.info(f"{built.tag}: {'built' if built.rebuilt else 'already built'}")
    pins = "\n".join(f"- `{r}`" for r in built.requirements)
    return MaterializeResult(
        metadata={
            "bento_tag": built.tag,
            "model_tag": built.model_tag,
            "rebuilt": built.rebuilt,
            "code_version": built.code_version,
            "bento_size_bytes": built.size_bytes,
            "model_size_bytes": model_size_bytes(settings, built.model_tag),
            "path": MetadataValue.path(str(built.path)),
            "dockerfile": MetadataValue.path(str(built.path / "env" / "docker" / "Dockerfile")),
            "pinned_requirements": len(built.requirements),
            "requirements": MetadataValue.md(pins),
            "containerize": MetadataValue.md(f"```\n{container_command(built.tag, settings)}\n```"),
        }
    )


@asset_check(
    asset=bento,
    name="serves_like_offline",
    blocking=True,
    description="The built bento, started with `bentoml serve` on a free loopback port, "
    "answers recent transactions with the registry model's offline scores (within 1e-6) and "
    "within the p99 latency budget; fails (blocking) otherwise, so it is never deployed.",
)
def serves_like_offline(
    context: AssetCheckExecutionContext, evergreen: EvergreenResource
) -> AssetCheckResult:
    """Infra validation of the newest bento materialization."""
    from evergreen.models.registry import CorruptArtifactError, ModelRegistry
    from evergreen.serving.validation import recent_transactions, validate_bento

    settings = evergreen.settings()
    event = context.instance.get_latest_materialization_event(AssetKey("bento"))
    if event is None or event.asset_materialization is None:
        return _failed("No bento has been built yet.")
    meta = event.asset_materialization.metadata
    bento_tag, model_tag = meta["bento_tag"].value, meta["model_tag"].value
    registry = ModelRegistry(settings)
    champion = registry.champion()
    if champion is None or champion.tag != model_tag:
        now = champion.tag if champion else "none"
        return _failed(f"{bento_tag} serves {model_tag}, but the champion is {now}: rebuild.")
    try:
        model = registry.load(model_tag)
    except CorruptArtifactError as error:
        return _failed(f"{bento_tag}: {error}")
    transactions, sample = recent_transactions(
        settings, settings.infra_validation_requests, settings.seed
    )
    if not transactions:
        return _failed("No recent raw transactions to replay.")
    work_dir = (
        settings.reports_dir / "infra_validation" / bento_tag.split(":")[1] / context.run.run_id
    )
    result = validate_bento(
        settings,
        bento_tag,
        model,
        transactions,
        budget_ms=settings.serve_p99_budget_ms,
        work_dir=work_dir,
        sample=sample,
    )
    return AssetCheckResult(
        passed=result.passed,
        severity=AssetCheckSeverity.ERROR,
        description=result.markdown().splitlines()[0],
        metadata={
            "bento_tag": bento_tag,
            "model_tag": model_tag,
            "reasons": MetadataValue.md("\n".join(f"- {r}" for r in result.reasons) or "none"),
            "report": MetadataValue.md(result.markdown()),
            "requests": result.requests,
            "max_abs_diff": MetadataValue.float(result.max_abs_diff),
            "p50_ms": MetadataValue.float(result.p50_ms),
            "p99_ms": MetadataValue.float(result.p99_ms),
            "budget_ms": MetadataValue.float(result.budget_ms),
            "serve_log": MetadataValue.path(result.log_path),
        },
    )


def _failed(reason: str) -> AssetCheckResult:
    return AssetCheckResult(
        passed=False,
        severity=AssetCheckSeverity.ERROR,
        description=reason,
        metadata={"reasons": MetadataValue.md(f"- {reason}")},
    )
