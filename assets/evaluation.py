"""The gate between training and serving: evaluate the candidate against the champion, decide.

``evaluation_report`` scores the cut-off day's candidate and the current champion on the newest
days of the same training set (held out: neither model trained on them), and writes metrics,
an Evidently report and a plot. ``promotion_decision`` runs the gate on those scores, records
the verdict's status changes in the ledger, and carries the BLOCKING check
``candidate_promoted``: when the candidate is not promoted the check fails, so nothing
downstream builds from it. Evidently, CatBoost and scikit-learn are imported inside the bodies.
"""

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetRecordsFilter,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.feast_features import training_set
from assets.models import candidate_model
from assets.partitions import daily_partitions
from evergreen.metadata import markdown_table
from evergreen.models.gate_policy import GatePolicy
from evergreen.resources import EvergreenResource
from evergreen.settings import EvergreenSettings

_POLICY = GatePolicy()
ACTOR = "dagster:promotion_decision"


@asset(
    partitions_def=daily_partitions,
    deps=[candidate_model, training_set],
    kinds={"evidently", "catboost"},
    group_name="models",
    code_version="evaluation-1",
)
def evaluation_report(context: AssetExecutionContext, evergreen: EvergreenResource):
    """The cut-off day's candidate and the current champion scored on the training set's
    held-out evaluation days: ROC AUC, average precision, F1/precision/recall at each model's
    threshold, Brier, calibration error and Card Precision@100, overall and per region,
    channel and card type; an Evidently report (classification quality, data drift from the
    training days to the evaluation window) and precision-recall curves."""
    from evergreen.models.registry import ModelRegistry

    settings = evergreen.settings()
    cutoff = dt.date.fromisoformat(context.partition_key)
    registry = ModelRegistry(settings)
    candidate = _load(registry, _candidate_tag(context, registry, cutoff), "candidate")
    champion_record = registry.champion()
    champion = None
    if champion_record is not None and champion_record.tag != candidate.tag:
        champion = _load(registry, champion_record.tag, "champion")
    split = _split(settings, cutoff, candidate.metadata.get("adaptation"))
    window = _fair_window(context, split.evaluation, champion)
    result = _evaluate(settings, cutoff, candidate, champion, split, window)
    result.files.write_summary(
        {
            **result.summary,
            "champion_at_evaluation": champion_record.tag if champion_record else None,
        }
    )
    return MaterializeResult(metadata=result.metadata)


def _load(registry, tag: str, role: str):
    """The verified model; a corrupt or unknown artifact fails the run in words."""
    from evergreen.models.registry import CorruptArtifactError, UnknownModelError

    try:
        return registry.load(tag)
    except (CorruptArtifactError, UnknownModelError) as error:
        raise Failure(f"Cannot evaluate: the {role} {tag} cannot be used: {error}") from None


def _candidate_tag(context: AssetExecutionContext, registry, cutoff: dt.date) -> str:
    """The model the cut-off day's ``candidate_model`` run registered: from its newest
    materialization, else from the ledger (a model registered by hand for that cut-off)."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=candidate_model.key, asset_partitions=[cutoff.isoformat()]),
        limit=1,
    ).records
    if records and records[0].asset_materialization is not None:
        tag = records[0].asset_materialization.metadata.get("model_tag")
        if tag is not None:
            return str(tag.value)
    for record in registry.records():  # newest first
        if record.cutoff == cutoff.isoformat():
            return record.tag
    raise Failure(
        f"No candidate model for cut-off {cutoff}: materialize candidate_model for {cutoff} first."
    )


def _split(settings: EvergreenSettings, cutoff: dt.date, adaptation: dict | None):
    """The candidate's own split (recorded with it), so the evaluation days are exactly those
    it held out; a model recorded without one: the settings' time split."""
    import pandas as pd

    from evergreen.models.training import Adaptation

    path = settings.training_set_path(cutoff)
    if not path.exists():
        raise Failure(f"No training set for cut-off {cutoff} at {path}: materialize it first.")
    plan = (
        Adaptation.from_dict(adaptation)
        if adaptation
        else Adaptation.standard(settings.evaluation_days, settings.validation_days)
    )
    try:
        return plan.split(pd.read_parquet(path))
    except ValueError as error:
        raise Failure(f"Cannot split the training set of {cutoff} ({path}): {error}") from None


def _fair_window(context: AssetExecutionContext, evaluation, champion):
    """The evaluation days the champion did not train or validate on either (all of them,
    unless an older partition is evaluated against a newer champion)."""
    from evergreen.models.comparison import last_fitted_day, window_after

    if champion is None:
        return evaluation
    fitted = last_fitted_day(champion.metadata)
    window = window_after(evaluation, fitted)
    if len(window) < len(evaluation):
        context.log.warning(
            f"champion {champion.tag} was fitted on days up to {fitted}: evaluating on the "
            f"{len(window):,} of {len(evaluation):,} held-out rows after that day"
        )
    if window.empty or window["label"].sum() == 0:
        raise Failure(
            f"The champion {champion.tag} was fitted on days up to {fitted}, which covers the "
            f"whole held-out window of this training set: no fair comparison is possible. "
            "Evaluate a newer cut-off day."
        )
    return window


@dataclass(frozen=True)
class _Result:
    files: object  # EvaluationFiles
    summary: dict
    metadata: dict


def _evaluate(settings, cutoff, candidate, champion, split, window) -> _Result:
    """Score, measure, write the files; returns what the summary and metadata say."""
    from evergreen.metadata import plot_metadata
    from evergreen.models.comparison import (
        CANDIDATE,
        CHAMPION,
        KEPT_COLUMNS,
        EvaluationFiles,
        segment_table,
        summary_table,
    )
    from evergreen.models.metrics import evaluate
    from evergreen.models.training import day_range
    from evergreen.report_server import report_url

    files = EvaluationFiles.for_cutoff(settings, cutoff)
    files.folder.mkdir(parents=True, exist_ok=True)
    scored = window[KEPT_COLUMNS].copy()
    scored[CANDIDATE] = candidate.predict_proba(window)
    if champion is not None:
        scored[CHAMPION] = champion.predict_proba(window)
    scored.to_parquet(files.scored, index=False)
    mine = evaluate(scored, CANDIDATE, candidate.threshold)
    theirs = evaluate(scored, CHAMPION, champion.threshold) if champion else None
    drift = _write_report(settings, files, candidate, split, window)
    _write_plot(files, scored, candidate, champion)
    summary = {
        "cutoff": cutoff.isoformat(),
        "window": day_range(window),
        "rows": len(window),
        "frauds": int(window["label"].sum()),
        "candidate": {"tag": candidate.tag, "threshold": candidate.threshold},
        "champion": {"tag": champion.tag, "threshold": champion.threshold} if champion else None,
        "candidate_metrics": mine.to_dict(),
        "champion_metrics": theirs.to_dict() if theirs else None,
    }
    metadata = {
        "candidate_tag": candidate.tag,
        "champion_tag": champion.tag if champion else "none",
        "evaluation_window": summary["window"],
        "dagster/row_count": len(window),
        "frauds": summary["frauds"],
        "summary": MetadataValue.md(summary_table(mine, theirs)),
        "segments": MetadataValue.md(segment_table(mine, theirs)),
        "candidate_metrics": MetadataValue.md(mine.to_markdown()),
        **_numbers("candidate", mine),
        **(_numbers("champion", theirs) if theirs else {}),
        **drift,
        "evidently_report": MetadataValue.path(str(files.report)),
        # Opens from the UI while `evergreen ui` serves the reports folder.
        "evidently_report_url": MetadataValue.url(report_url(settings, files.report)),
        **plot_metadata(settings, "precision_recall", files.plot, "precision-recall curves"),
        "scored_frame": MetadataValue.path(str(files.scored)),
    }
    if theirs:
        metadata["champion_metrics"] = MetadataValue.md(theirs.to_markdown())
    return _Result(files, summary, metadata)


def _numbers(prefix: str, evaluation) -> dict:
    keys = ("roc_auc", "average_precision", "card_precision_at_k", "f1", "brier", "ece")
    out = {}
    for key in keys:
        value = getattr(evaluation.overall, key)
        name = key.replace("_at_k", f"_at_{evaluation.k}")
        if value is not None:
            out[f"{prefix}_{name}"] = MetadataValue.float(float(value))
    out[f"{prefix}_threshold"] = MetadataValue.float(float(evaluation.threshold))
    return out


def _write_report(settings, files, candidate, split, window) -> dict:
    """Evidently HTML (reference: the training days, scored in-sample by the candidate) and
    the per-feature drift it finds; returns the drift metadata."""
    import pandas as pd

    from evergreen.models.comparison import CANDIDATE
    from evergreen.models.report import evidently_report, sample_rows

    fitted = pd.concat([split.train, split.validation])
    reference = sample_rows(fitted, seed=settings.seed)
    reference = reference.assign(**{CANDIDATE: candidate.predict_proba(reference)})
    current = sample_rows(window, seed=settings.seed)
    current = current.assign(**{CANDIDATE: candidate.predict_proba(current)})
    features = list(candidate.feature_names)
    written = evidently_report(
        reference,
        current,
        files.report,
        features=features,
        categorical=candidate.cat_features,
        prediction=CANDIDATE,
        threshold=candidate.threshold,
        seed=settings.seed,
    )
    drift = written.drift
    drifted = [d for d in drift.values() if d.drifted]
    rows = [
        [d.column, d.method, f"{d.score:.4f}", f"{d.threshold:.3g}", "yes" if d.drifted else "no"]
        for d in sorted(drift.values(), key=lambda d: not d.drifted)
    ]
    columns = ["feature", "method", "score", "threshold", "drifted"]
    return {
        "drifted_features": len(drifted),
        "drifted_feature_names": ", ".join(d.column for d in drifted) or "none",
        "feature_drift": MetadataValue.md(markdown_table(columns, rows, align="llrr")),
    }


def _write_plot(files, scored, candidate, champion) -> Path:
    from evergreen.models.comparison import CANDIDATE, CHAMPION, write_pr_curves

    curves = {CANDIDATE: f"candidate {candidate.tag}"}
    if champion is not None:
        curves[CHAMPION] = f"champion {champion.tag}"
    return write_pr_curves(scored, curves, files.plot)


class PromotionConfig(Config):
    """The gate's main thresholds (see ``evergreen.models.gate.GatePolicy``)."""

    min_roc_auc: float = _POLICY.min_roc_auc
    min_average_precision: float = _POLICY.min_average_precision
    max_ece: float = _POLICY.max_ece
    min_segment_positives: int = _POLICY.min_segment_positives
    resamples: int = _POLICY.resamples

    def policy(self) -> GatePolicy:
        return GatePolicy(**self.model_dump())


@asset(
    partitions_def=daily_partitions,
    deps=[evaluation_report],
    kinds={"sqlite"},
    group_name="models",
    code_version="promotion-1",
    check_specs=[
        AssetCheckSpec(
            "candidate_promoted",
            asset="promotion_decision",
            description="The cut-off day's candidate passed the gate and is the champion; "
            "fails (blocking) otherwise, so nothing downstream builds from a worse model.",
            blocking=True,
            partitions_def=daily_partitions,
        )
    ],
)
def promotion_decision(
    context: AssetExecutionContext, config: PromotionConfig, evergreen: EvergreenResource
):
    """The gate's verdict on the evaluated candidate (floors, calibration, non-inferiority to
    the champion overall and per segment, improvement), written to the ledger: promote -> the
    candidate becomes champion and the old champion is retired; challenger; or rejected."""
    import pandas as pd

    from evergreen.models.comparison import CANDIDATE, CHAMPION, EvaluationFiles
    from evergreen.models.gate import decide
    from evergreen.models.registry import ModelRegistry

    settings = evergreen.settings()
    cutoff = dt.date.fromisoformat(context.partition_key)
    files = EvaluationFiles.for_cutoff(settings, cutoff)
    if not (files.summary.exists() and files.scored.exists()):
        raise Failure(f"No evaluation of {cutoff} in {files.folder}: materialize it first.")
    summary = files.read_summary()
    registry = ModelRegistry(settings)
    _require_same_champion(registry, summary, cutoff)
    candidate_tag = summary["candidate"]["tag"]
    champion_col = CHAMPION if summary["champion"] else None
    policy = config.policy()
    verdict = decide(pd.read_parquet(files.scored), CANDIDATE, champion_col, policy, settings.seed)
    changes = _apply(registry, verdict, candidate_tag, cutoff, context.run.run_id)
    for line in changes:
        context.log.info(line)
    return MaterializeResult(
        metadata={
            "outcome": verdict.outcome,
            "candidate_tag": candidate_tag,
            "champion_before": summary["champion_at_evaluation"] or "none",
            "champion_after": getattr(registry.champion(), "tag", "none"),
            "verdict": MetadataValue.md(verdict.to_markdown()),
            "status_changes": MetadataValue.md("\n".join(f"- {c}" for c in changes)),
            "rules_failed": len(verdict.failed),
            "policy": MetadataValue.json(policy.model_dump(mode="json")),
            "seed": settings.seed,
        },
        check_results=[_promoted_check(verdict, candidate_tag)],
    )


def _require_same_champion(registry, summary: dict, cutoff: dt.date) -> None:
    now = registry.champion()
    then = summary.get("champion_at_evaluation")
    if (now.tag if now else None) != then:
        raise Failure(
            f"The champion changed since the evaluation of {cutoff} (then {then or 'none'}, now "
            f"{now.tag if now else 'none'}): re-materialize evaluation_report for {cutoff}."
        )


def _apply(registry, verdict, tag: str, cutoff: dt.date, run_id: str) -> list[str]:
    """Write the verdict's status change(s) to the ledger; returns them in words."""
    from evergreen.models.ledger import TRANSITIONS, ModelStatus

    target = {
        "promote": ModelStatus.CHAMPION,
        "challenger": ModelStatus.CHALLENGER,
        "reject": ModelStatus.REJECTED,
    }[verdict.outcome]
    record = registry.get(tag)
    if record.status is target:
        return [f"{tag} is already {target.value}: no change."]
    if record.status is ModelStatus.CHAMPION:
        return [
            f"{tag} is the champion and stays so although the gate now says "
            f"{verdict.outcome}: only promoting another model replaces a champion."
        ]
    if target not in TRANSITIONS[record.status]:
        return [
            f"{tag} is {record.status.value} and stays so although the gate now says "
            f"{verdict.outcome}: a {record.status.value} model becomes "
            f"{target.value} only by hand (`evergreen models promote`)."
        ]
    previous = registry.champion()
    reason = f"gate verdict for cut-off {cutoff} (run {run_id[:8]}): {verdict.summary}"
    registry.set_status(tag, target, actor=ACTOR, reason=reason)
    changes = [f"{tag}: {record.status.value} -> {target.value}."]
    if target is ModelStatus.CHAMPION and previous is not None:
        changes.append(f"{previous.tag}: champion -> retired (replaced by {tag}).")
    return changes


def _promoted_check(verdict, tag: str) -> AssetCheckResult:
    promoted = verdict.outcome == "promote"
    words = f"{tag}: {verdict.summary}"
    if not promoted:
        words += " " + " ".join(r.text for r in verdict.failed)
    return AssetCheckResult(
        check_name="candidate_promoted",
        asset_key="promotion_decision",
        passed=promoted,
        severity=AssetCheckSeverity.ERROR,
        description=words,
        metadata={
            "outcome": verdict.outcome,
            "candidate_tag": tag,
            "failed_rules": MetadataValue.json([r.name for r in verdict.failed]),
        },
    )
