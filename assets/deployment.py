"""The ``deployment`` asset: the validated bento rolled out behind the router, without downtime.

Materializing it takes the newest ``bento`` materialization whose blocking infra-validation
check (``serves_like_offline``) passed and rolls it out with the configured strategy
(``evergreen.rollout``): blue-green or canary with analysis, automatic rollback, every step in
the ledger. The metadata tells the rollout: its timeline, the analysis of each window, and a
plot of weights and error rates. A rollout that fails raises a ``Failure`` carrying the same
metadata while the previous revision keeps serving. The replicas outlive the run: a watchdog
process keeps them (and the router) running.

The rollout modules are imported inside the body: loading the code location stays fast.
"""

from dagster import (
    AssetCheckKey,
    AssetExecutionContext,
    AssetKey,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from assets.jobs import DEPLOY_JOB
from evergreen.resources import EvergreenResource

ACTOR = "dagster:deployment"
BENTO = AssetKey("bento")
INFRA_VALIDATION = AssetCheckKey(BENTO, "serves_like_offline")


class DeploymentConfig(Config):
    """How the rollout goes."""

    strategy: str = Field(default="canary", description="blue-green or canary.")
    canary_steps: list[int] = Field(
        default=[10, 50, 100], description="Canary weights in percent, rising to 100."
    )
    step_seconds: float = Field(default=30.0, ge=0, description="Canary analysis window.")
    keep_previous_seconds: float = Field(
        default=60.0, ge=0, description="Blue-green: blue keeps running this long for rollback."
    )
    observe_seconds: float = Field(
        default=0.0, ge=0, description="Blue-green: analysis window after the switch."
    )
    warmup_requests: int = Field(default=20, ge=0, description="Requests to each new replica.")
    drain_seconds: float = Field(default=2.0, ge=0, description="Least drain before SIGTERM.")
    replicas: int = Field(default=2, ge=1, description="Replicas of the new revision.")
    max_error_rate: float = Field(default=0.01, ge=0, description="Canary: most 5xx share.")
    max_ks_statistic: float = Field(
        default=0.2, gt=0, description="Canary: largest score-distribution difference (KS)."
    )
    source: str | None = Field(
        default=None,
        description="Deploy this (a model or bento tag, or a service folder) instead of the "
        "newest validated bento; skips the infra-validation requirement.",
    )
    env: dict[str, str] = Field(default={}, description="Environment of the replicas.")
    target: str | None = Field(
        default=None,
        description="process or container (each bento's image, containerized first if "
        "missing); default: EVERGREEN_DEPLOY_TARGET.",
    )


def _validated_bento(context: AssetExecutionContext) -> str:
    """The newest bento's tag, if its infra validation passed; else a clear Failure."""
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus,
    )

    records = context.instance.fetch_materializations(BENTO, limit=1).records
    if not records or records[0].asset_materialization is None:
        raise Failure("No bento has been built: materialize `bento` first.")
    event = records[0]  # an EventLogRecord: it carries the storage id the check points at
    bento_tag = event.asset_materialization.metadata["bento_tag"].value
    storage = context.instance.event_log_storage
    record = storage.get_latest_asset_check_execution_by_key([INFRA_VALIDATION]).get(
        INFRA_VALIDATION
    )
    passed = record is not None and record.status == AssetCheckExecutionRecordStatus.SUCCEEDED
    evaluation = record.event.asset_check_evaluation if record and record.event else None
    target = evaluation.target_materialization_data if evaluation else None
    if not passed or (target is not None and target.storage_id != event.storage_id):
        raise Failure(
            f"{bento_tag} has not passed its infra validation (bento check serves_like_offline):"
            " nothing is deployed. Re-run the check, or fix the bento."
        )
    return bento_tag


def _strategy(config: DeploymentConfig, p99_budget_ms: float):
    from evergreen.rollout.analysis import AnalysisPolicy
    from evergreen.rollout.strategies import BlueGreen, Canary

    policy = AnalysisPolicy(
        max_error_rate=config.max_error_rate,
        max_ks_statistic=config.max_ks_statistic,
        max_p99_ms=p99_budget_ms,
    )
    if config.strategy == "blue-green":
        return BlueGreen(
            warmup_requests=config.warmup_requests,
            observe_s=config.observe_seconds,
            keep_previous_s=config.keep_previous_seconds,
            drain_s=config.drain_seconds,
            analysis=policy,
        )
    if config.strategy == "canary":
        return Canary(
            steps=tuple(config.canary_steps),
            step_s=config.step_seconds,
            warmup_requests=min(config.warmup_requests, 5),
            drain_s=config.drain_seconds,
            analysis=policy,
        )
    raise Failure(f"Unknown strategy {config.strategy!r}: use blue-green or canary.")


def _rollout_metadata(settings, rollout, duration_s: float, serving_url: str) -> dict:
    from evergreen.metadata import plot_metadata
    from evergreen.rollout.timeline import analyses_markdown, plot_rollout, timeline_markdown

    plot = plot_rollout(rollout, settings.reports_dir / "rollouts" / f"{rollout.id}.png")
    return {
        "rollout_id": rollout.id,
        "kind": rollout.kind,
        "status": rollout.status,
        "revision": rollout.revision,
        "model_version": rollout.model_version,
        "replaced": rollout.from_model_version or "(nothing served)",
        "duration_s": MetadataValue.float(round(duration_s, 2)),
        "timeline": MetadataValue.md(timeline_markdown(rollout)),
        "analysis": MetadataValue.md(analyses_markdown(rollout)),
        **plot_metadata(settings, "timeline", plot, "rollout timeline"),
        "serving_url": MetadataValue.url(serving_url),
    }


def _restore_serving_champion(settings, rollout, why: str) -> None:
    """A champion that failed its rollout is rejected and the model still serving is champion
    again, so the ledger says what serves (and the deploy sensor does not retry forever)."""
    from evergreen.models.ledger import ModelStatus
    from evergreen.models.registry import ModelRegistry

    registry = ModelRegistry(settings)
    champion = registry.champion()
    previous = rollout.from_model_version if rollout else None
    if champion is None or previous is None or champion.tag != rollout.model_version:
        return
    reason = f"rollout {rollout.id} of {champion.tag} failed: {why}"
    registry.set_status(
        previous, ModelStatus.CHAMPION, ACTOR, reason, demote_champion_to=ModelStatus.REJECTED
    )


@asset(
    deps=[BENTO],
    kinds={"caddy", "bentoml"},
    group_name="serving",
    code_version="deployment-1",
)
def deployment(
    context: AssetExecutionContext, config: DeploymentConfig, evergreen: EvergreenResource
) -> MaterializeResult:
    """The promoted bento serving behind the router, rolled out with the configured strategy
    (blue-green or canary with automatic rollback); its timeline and analyses as metadata."""
    from evergreen.rollout.container import ensure_image
    from evergreen.rollout.controller import RolloutController, RolloutFailed
    from evergreen.rollout.records import get_rollout, rollout_ledger
    from evergreen.rollout.revisions import resolve_revision
    from evergreen.rollout.state import read_state
    from evergreen.rollout.supervisor import Supervisor
    from evergreen.workers import CELERY_EXECUTOR

    settings = evergreen.settings().ensure_dirs()
    if context.job_def.executor_def.name == CELERY_EXECUTOR:
        raise Failure(
            "On the cluster profile a rollout runs on the control plane, where the router "
            f"serves: launch the {DEPLOY_JOB} job (its steps run in the run's own process) "
            "instead of materializing deployment on a worker host."
        )
    if config.target not in (None, "process", "container"):
        raise Failure(f"Unknown target {config.target!r}: use process or container.")
    if config.target:
        settings = settings.model_copy(update={"deploy_target": config.target})
    what = config.source or _validated_bento(context)
    spec = resolve_revision(settings, what, config.env, config.replicas)
    controller = RolloutController(settings, Supervisor(settings), actor=ACTOR)
    image = ensure_image(settings, controller.supervisor.target, spec)
    if image is not None:
        built = f"built in {image.seconds:.0f} s" if image.built else "already built"
        context.log.info(f"image {image.tag}: {built}, {image.size_bytes / 1e9:.2f} GB")
    state = read_state(settings)
    stable = state.revisions.get(state.stable) if state.stable else None
    if stable is not None and stable.phase == "ready" and stable.spec == spec:
        controller.serve()  # already serving: only make sure it stays so
        return MaterializeResult(
            metadata={"status": "unchanged", "revision": stable.name, "source": spec.source}
        )
    reason = f"materialization of deployment in run {context.run.run_id}"
    try:
        result = controller.deploy(spec, _strategy(config, settings.serve_p99_budget_ms), reason)
    except RolloutFailed as failure:
        with rollout_ledger(settings) as conn:
            rollout = get_rollout(conn, failure.rollout_id)
        _restore_serving_champion(settings, rollout, str(failure))
        url = controller.supervisor.serving_url()
        raise Failure(
            description=f"{spec.source} was not deployed: {failure}. The previous revision "
            "still serves.",
            metadata=_rollout_metadata(settings, rollout, 0.0, url),
        ) from None
    finally:
        controller.supervisor.ensure_watchdog()
    url = controller.supervisor.serving_url()
    return MaterializeResult(
        metadata=_rollout_metadata(settings, result.rollout, result.duration_s, url)
    )
