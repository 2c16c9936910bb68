"""Evidently (0.7) reports: classification quality and data drift as HTML, and drift scores.

Evidently is imported inside the functions (it takes seconds). Frames larger than ``max_rows``
are sampled with a fixed seed first, so a report takes seconds on any window: the HTML is for a
person to look at; the gate's numbers come from ``metrics.py`` on every row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

MAX_ROWS = 20_000


@dataclass(frozen=True)
class FeatureDrift:
    """Evidently's drift test of one column: its method, score, threshold and verdict."""

    column: str
    method: str
    score: float
    threshold: float
    drifted: bool

    def to_dict(self) -> dict:
        return asdict(self)


def sample_rows(frame: pd.DataFrame, max_rows: int = MAX_ROWS, seed: int = 0) -> pd.DataFrame:
    """At most ``max_rows`` rows, drawn with ``seed``; the frame itself when small enough."""
    if len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed).sort_index()


def _definition(numerical, categorical, target=None, prediction=None):
    from evidently import BinaryClassification, DataDefinition

    classification = None
    if target is not None:
        classification = [
            BinaryClassification(target=target, prediction_probas=prediction, pos_label=1)
        ]
    return DataDefinition(
        numerical_columns=list(numerical),
        categorical_columns=list(categorical),
        classification=classification,
    )


def _dataset(frame: pd.DataFrame, columns: list[str], definition):
    from evidently import Dataset

    return Dataset.from_pandas(frame[columns].reset_index(drop=True), data_definition=definition)


def _split_columns(
    frame: pd.DataFrame, features: Sequence[str], categorical: Sequence[str]
) -> tuple[list[str], list[str]]:
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ValueError(f"The frame lacks feature column(s) {missing}.")
    cats = [c for c in features if c in set(categorical)]
    nums = [c for c in features if c not in set(categorical)]
    return nums, cats


@dataclass(frozen=True)
class EvidentlyReport:
    """A written report and the per-feature drift it found."""

    path: Path
    drift: dict[str, FeatureDrift]


def evidently_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    path: Path,
    *,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    target: str = "label",
    prediction: str = "score",
    threshold: float | None = None,
    max_rows: int = MAX_ROWS,
    seed: int = 0,
) -> EvidentlyReport:
    """Write an Evidently HTML report to ``path``: data drift of ``features`` from
    ``reference`` to ``current`` (``DataDriftPreset``) and the classification quality of
    ``prediction`` (a fraud probability) against ``target`` (0/1) at ``threshold``
    (``ClassificationQuality`` with confusion matrix and precision-recall curve and table), in
    both frames side by side, with Evidently's default tests. Returns the path and the drift.

    Both frames need the features, the target and the prediction column (Evidently compares
    quality on the reference too: score the training rows in-sample to see over-fitting)."""
    from evidently import Report
    from evidently.presets import ClassificationQuality, DataDriftPreset

    for name, frame in (("reference", reference), ("current", current)):
        absent = [c for c in (target, prediction) if c not in frame.columns]
        if absent:
            raise ValueError(f"The {name} frame lacks column(s) {absent}.")
        if frame.empty:
            raise ValueError(f"The {name} frame has no rows.")
    nums, cats = _split_columns(reference, features, categorical)
    _split_columns(current, features, categorical)
    columns = [*nums, *cats, target, prediction]
    definition = _definition(nums, cats, target, prediction)
    ref = _prepared(sample_rows(reference, max_rows, seed), cats, target)
    cur = _prepared(sample_rows(current, max_rows, seed), cats, target)
    quality = ClassificationQuality(
        probas_threshold=threshold, conf_matrix=True, pr_curve=True, pr_table=True
    )
    report = Report([DataDriftPreset(columns=[*nums, *cats]), quality], include_tests=True)
    snapshot = report.run(_dataset(cur, columns, definition), _dataset(ref, columns, definition))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    drift = _drift_results(snapshot)
    return EvidentlyReport(path, {c: drift[c] for c in [*nums, *cats]})


def write_evidently_report(
    reference: pd.DataFrame, current: pd.DataFrame, path: Path, **options
) -> Path:
    """``evidently_report`` (same arguments), returning only the HTML file's path."""
    return evidently_report(reference, current, path, **options).path


def _prepared(
    frame: pd.DataFrame, categorical: Sequence[str], target: str | None = None
) -> pd.DataFrame:
    """Categoricals as strings and the target as int, as Evidently expects."""
    out = frame.copy()
    for column in categorical:
        out[column] = out[column].astype(str)
    if target is not None:
        out[target] = out[target].astype(int)
    return out


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    max_rows: int = MAX_ROWS,
    seed: int = 0,
) -> dict[str, FeatureDrift]:
    """Evidently's per-column drift of ``features`` from ``reference`` to ``current``: the
    method it picks for the column's type and size (e.g. Wasserstein distance for numbers,
    Jensen-Shannon for categories on large samples; p-value tests on small ones), the score,
    the threshold and whether the column drifted."""
    from evidently import Report
    from evidently.metrics import ValueDrift

    nums, cats = _split_columns(reference, features, categorical)
    _split_columns(current, features, categorical)
    definition = _definition(nums, cats)
    columns = [*nums, *cats]
    ref = _prepared(sample_rows(reference, max_rows, seed), cats)
    cur = _prepared(sample_rows(current, max_rows, seed), cats)
    report = Report([ValueDrift(column=c) for c in columns], include_tests=True)
    snapshot = report.run(_dataset(cur, columns, definition), _dataset(ref, columns, definition))
    drift = _drift_results(snapshot)
    return {c: drift[c] for c in columns}


def _drift_results(snapshot) -> dict[str, FeatureDrift]:
    """Every ``ValueDrift`` of a report run: its resolved method, threshold, score, and
    whether its test failed (the column drifted)."""
    data = snapshot.dict()
    failed = {
        test["metric_config"]["params"].get("column")
        for test in data["tests"]
        if test["metric_config"]["params"].get("type", "").endswith(":ValueDrift")
        and str(getattr(test["status"], "value", test["status"])) == "FAIL"
    }
    out = {}
    for result in data["metrics"]:
        config = result["config"]
        if not config["type"].endswith(":ValueDrift"):
            continue
        out[config["column"]] = FeatureDrift(
            column=config["column"],
            method=config["method"],
            score=float(result["value"]),
            threshold=float(config["threshold"]),
            drifted=config["column"] in failed,
        )
    return out
