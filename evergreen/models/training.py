"""Training a candidate: a time-ordered split and a reproducible CatBoost classifier.

The training set's newest ``evaluation_days`` days are held out (no model trains on them: the
evaluation compares candidate and champion there); the ``validation_days`` before them drive
early stopping and the choice of the operating threshold; everything older is trained on.

Reproducibility: the seed and ``thread_count`` are fixed (CatBoost is deterministic for a given
thread count), and CatBoost's two run-specific stamps in the model file, ``model_guid`` and
``train_finish_time``, are replaced by a hash of the inputs and dropped, so equal inputs give a
byte-identical model file (the registry then recognises a retrained model by its sha256).

Adaptation (``Adaptation``): while a drift is confirmed the split changes so the newest
labelled days, the only ones that show the drift, are trained on: the newest
``drift_evaluation_days`` are held out (the gate still compares candidate and champion on
exactly those days), validation is a fixed share of customers (by a hash of their id) of the
older days instead of whole days, and the days from the drift's first day on weigh
``drift_recent_weight`` times as much in the loss. Outside a drift nothing changes.

Operating threshold: the score maximising F1 on the validation days (precision and recall
weighted equally; among equal F1 the lowest such score). It is stored with the model, and
evaluation and serving flag a transaction when its score is >= the threshold.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evergreen.models.code_version import training_code_version  # noqa: F401  (re-export)
from evergreen.models.features import CATEGORICAL_FEATURES, FEATURE_NAMES, model_frame

if TYPE_CHECKING:
    from catboost import CatBoostClassifier

LABEL = "label"
THREAD_COUNT = 2  # fixed: CatBoost's result depends on the number of threads
THRESHOLD_RULE = "max F1 on the validation days"
DEFAULT_PARAMS: dict[str, Any] = {
    "iterations": 600,
    "learning_rate": 0.08,
    "depth": 6,
    "l2_leaf_reg": 3.0,
    "loss_function": "Logloss",
    "eval_metric": "Logloss",
    "od_type": "Iter",
    "od_wait": 50,  # early stopping: 50 rounds without a better validation loss
    "use_best_model": True,
    # region, channel and card type have a handful of values each: one-hot costs a quarter of
    # the CPU of CatBoost's target statistics at the same AP/AUC (measured on the demo set).
    "one_hot_max_size": 16,
}


@dataclass(frozen=True)
class TimeSplit:
    """A training set cut by transaction day: train < validation < evaluation."""

    train: pd.DataFrame
    validation: pd.DataFrame
    evaluation: pd.DataFrame

    def parts(self) -> dict[str, pd.DataFrame]:
        return {"train": self.train, "validation": self.validation, "evaluation": self.evaluation}

    def days(self) -> dict[str, str]:
        """Each part's first and last transaction day, as ``first..last``."""
        return {name: day_range(part) for name, part in self.parts().items()}


def day_range(frame: pd.DataFrame) -> str:
    """``first..last`` transaction day of a frame (empty string when empty)."""
    if frame.empty:
        return ""
    days = frame["tx_datetime"].dt.date
    return f"{days.min()}..{days.max()}"


def split_by_time(frame: pd.DataFrame, evaluation_days: int, validation_days: int) -> TimeSplit:
    """Split by UTC transaction day: the newest ``evaluation_days`` days are held out, the
    ``validation_days`` before them validate, the rest trains. Raises ``ValueError`` when the
    frame spans too few days to leave at least one training day."""
    days = frame["tx_datetime"].dt.tz_convert("UTC").dt.date
    distinct = sorted(days.unique())
    needed = evaluation_days + validation_days + 1
    if len(distinct) < needed:
        raise ValueError(
            f"the training set spans {len(distinct)} day(s) ({day_range(frame) or 'none'}); "
            f"{evaluation_days} evaluation + {validation_days} validation + at least 1 "
            f"training day need {needed}"
        )
    first_evaluation = distinct[-evaluation_days]
    first_validation = distinct[-(evaluation_days + validation_days)]
    return TimeSplit(
        train=frame[days < first_validation],
        validation=frame[(days >= first_validation) & (days < first_evaluation)],
        evaluation=frame[days >= first_evaluation],
    )


@dataclass(frozen=True)
class Adaptation:
    """How a training set is split and weighted; the default is the plain time split."""

    evaluation_days: int
    validation_days: int  # 0: validation is a share of customers of the older days
    validation_share: float = 0.0
    recent_from: dt.date | None = None  # days from here on weigh ``recent_weight``
    recent_weight: float = 1.0
    reason: str = "no drift confirmed: time split"

    @classmethod
    def standard(cls, evaluation_days: int, validation_days: int) -> Adaptation:
        return cls(evaluation_days, validation_days)

    @classmethod
    def for_drift(
        cls,
        first_day: dt.date,
        evaluation_days: int,
        validation_share: float,
        recent_weight: float,
        reason: str,
    ) -> Adaptation:
        return cls(evaluation_days, 0, validation_share, first_day, recent_weight, reason)

    @property
    def adapted(self) -> bool:
        return self.recent_from is not None

    def to_dict(self) -> dict[str, Any]:
        """As model metadata holds it: no None (BentoML refuses it), the day as ISO text."""
        data = asdict(self)
        data["recent_from"] = self.recent_from.isoformat() if self.recent_from else None
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Adaptation:
        recent = data.get("recent_from")
        return cls(**{**data, "recent_from": dt.date.fromisoformat(recent) if recent else None})

    def split(self, frame: pd.DataFrame) -> TimeSplit:
        """The split this adaptation makes of a training set (see the module's docstring)."""
        if not self.validation_days:
            return split_by_customers(frame, self.evaluation_days, self.validation_share)
        return split_by_time(frame, self.evaluation_days, self.validation_days)

    def weights(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Per row: ``recent_weight`` from ``recent_from`` on, else 1; None when unweighted."""
        if self.recent_from is None or self.recent_weight == 1.0:
            return None
        days = frame["tx_datetime"].dt.tz_convert("UTC").dt.date
        return np.where(days >= self.recent_from, self.recent_weight, 1.0)


def split_by_customers(frame: pd.DataFrame, evaluation_days: int, share: float) -> TimeSplit:
    """The newest ``evaluation_days`` days held out; of the older days, the customers whose id
    hashes into ``share`` validate and the others train (the same customers every time)."""
    days = frame["tx_datetime"].dt.tz_convert("UTC").dt.date
    distinct = sorted(days.unique())
    if len(distinct) < evaluation_days + 1:
        raise ValueError(
            f"the training set spans {len(distinct)} day(s) ({day_range(frame) or 'none'}); "
            f"{evaluation_days} evaluation + at least 1 training day need {evaluation_days + 1}"
        )
    first_evaluation = distinct[-evaluation_days]
    older = days < first_evaluation
    bucket = pd.util.hash_pandas_object(frame["customer_id"], index=False).to_numpy() % 1000
    validating = bucket < round(share * 1000)
    return TimeSplit(
        train=frame[older & ~validating],
        validation=frame[older & validating],
        evaluation=frame[~older],
    )


@dataclass(frozen=True)
class Provenance:
    """Where a model's data came from; filled in by whoever knows (the asset)."""

    cutoff: str = ""
    training_window: str = ""
    data_fingerprint: str = ""
    feature_service: str = ""
    feature_service_version: str = ""
    code_version: str = ""


@dataclass
class TrainedModel:
    """A trained CatBoost classifier with everything needed to reproduce and judge it."""

    model: CatBoostClassifier
    seed: int
    params: dict[str, Any]
    threshold: float
    best_iteration: int
    tree_count: int
    rows: dict[str, int]
    positives: dict[str, int]
    days: dict[str, str]
    validation_metrics: dict[str, float]
    training_seconds: float
    learning_curve: dict[str, list[float]]
    feature_importances: list[tuple[str, float]]
    input_hash: str
    adaptation: dict[str, Any] = field(default_factory=dict)  # ``Adaptation.to_dict``
    feature_names: list[str] = field(default_factory=lambda: list(FEATURE_NAMES))
    cat_features: list[str] = field(default_factory=lambda: list(CATEGORICAL_FEATURES))
    threshold_rule: str = THRESHOLD_RULE
    library_versions: dict[str, str] = field(default_factory=lambda: library_versions())
    provenance: Provenance = field(default_factory=Provenance)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Fraud probability of each row of ``frame`` (which holds at least the features)."""
        return predict_fraud_proba(self.model, frame, self.feature_names, self.cat_features)

    def save(self, path: Path) -> Path:
        """Write the CatBoost model file (``.cbm``), byte-identical for identical inputs."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model.save_model(str(path))
        return path


def predict_fraud_proba(
    model: Any, frame: pd.DataFrame, feature_names: list[str], cat_features: list[str]
) -> np.ndarray:
    """A CatBoost classifier's fraud probability for each row of a frame."""
    from catboost import Pool

    if frame.empty:
        return np.empty(0, dtype=np.float64)
    pool = Pool(model_frame(frame, feature_names, cat_features), cat_features=cat_features)
    return model.predict_proba(pool, thread_count=THREAD_COUNT)[:, 1].astype(np.float64)


def train_candidate(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    seed: int,
    params: dict[str, Any] | None = None,
    adaptation: Adaptation | None = None,
    feature_names: list[str] | None = None,
) -> TrainedModel:
    """Fit CatBoost (native categoricals) on ``train`` with early stopping on ``validation``,
    and choose the operating threshold on ``validation``. Same inputs, same model.
    ``adaptation`` weights the rows of a confirmed drift's days (``Adaptation.weights``);
    ``feature_names``: a subset of the model's inputs (an ablation); all of them by default."""
    from catboost import CatBoostClassifier, Pool

    _require_both_classes(train, "train")
    _require_both_classes(validation, "validation")
    full_params = {
        **DEFAULT_PARAMS,
        **(params or {}),
        "random_seed": seed,
        "thread_count": THREAD_COUNT,
    }
    names = list(feature_names or FEATURE_NAMES)
    categorical = [c for c in CATEGORICAL_FEATURES if c in names]
    train_x = model_frame(train, names, categorical)
    validation_x = model_frame(validation, names, categorical)
    model = CatBoostClassifier(**full_params, allow_writing_files=False, verbose=False)
    began = time.perf_counter()
    train_w = adaptation.weights(train) if adaptation else None
    validation_w = adaptation.weights(validation) if adaptation else None
    model.fit(
        Pool(train_x, train[LABEL].astype(int), cat_features=categorical, weight=train_w),
        eval_set=Pool(
            validation_x,
            validation[LABEL].astype(int),
            cat_features=categorical,
            weight=validation_w,
        ),
    )
    seconds = time.perf_counter() - began
    weights = [pd.Series(w) for w in (train_w, validation_w) if w is not None]
    input_hash = _input_hash(
        full_params, train_x, train[LABEL], validation_x, validation[LABEL], *weights
    )
    _stamp_deterministically(model, input_hash)

    trained = TrainedModel(
        model=model,
        seed=seed,
        params=full_params,
        threshold=0.5,
        best_iteration=int(model.get_best_iteration() or 0),
        tree_count=int(model.tree_count_),
        rows={"train": len(train), "validation": len(validation)},
        positives={"train": int(train[LABEL].sum()), "validation": int(validation[LABEL].sum())},
        days={"train": day_range(train), "validation": day_range(validation)},
        validation_metrics={},
        training_seconds=round(seconds, 3),
        learning_curve=_learning_curve(model),
        feature_importances=_importances(model),
        input_hash=input_hash,
        adaptation=adaptation.to_dict() if adaptation else {},
        feature_names=names,
        cat_features=categorical,
    )
    scores = trained.predict_proba(validation)
    labels = validation[LABEL].to_numpy(dtype=int)
    trained.threshold = choose_threshold(labels, scores)
    trained.validation_metrics = validation_metrics(labels, scores, trained.threshold)
    return trained


def choose_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score maximising F1 (flag when score >= threshold); the lowest among ties."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(labels, scores)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    return float(thresholds[int(np.argmax(f1))])


def validation_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Average precision, ROC AUC, log loss and F1/precision/recall at the threshold."""
    from sklearn.metrics import (
        average_precision_score,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    flagged = (scores >= threshold).astype(int)
    return {
        "average_precision": float(average_precision_score(labels, scores)),
        "roc_auc": float(roc_auc_score(labels, scores)),
        "log_loss": float(log_loss(labels, scores, labels=[0, 1])),
        "f1": float(f1_score(labels, flagged, zero_division=0)),
        "precision": float(precision_score(labels, flagged, zero_division=0)),
        "recall": float(recall_score(labels, flagged, zero_division=0)),
    }


def _require_both_classes(frame: pd.DataFrame, part: str) -> None:
    positives = int(frame[LABEL].sum()) if len(frame) else 0
    if positives == 0 or positives == len(frame):
        raise ValueError(
            f"the {part} days ({day_range(frame) or 'no rows'}) hold {len(frame)} row(s) and "
            f"{positives} fraud(s); training needs both frauds and genuine transactions there"
        )


def _input_hash(params: dict, *parts: pd.DataFrame | pd.Series) -> str:
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    for part in parts:
        digest.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _stamp_deterministically(model: CatBoostClassifier, input_hash: str) -> None:
    # CatBoost stamps a random guid and the wall-clock finish time into the model file.
    metadata = model.get_metadata()
    metadata["model_guid"] = input_hash[:32]
    if "train_finish_time" in metadata:
        del metadata["train_finish_time"]


def _learning_curve(model: CatBoostClassifier) -> dict[str, list[float]]:
    evals = model.get_evals_result()
    return {part: [float(v) for v in evals[part]["Logloss"]] for part in ("learn", "validation")}


def _importances(model: CatBoostClassifier) -> list[tuple[str, float]]:
    pairs = zip(model.feature_names_, model.get_feature_importance(), strict=True)
    return sorted(((name, float(value)) for name, value in pairs), key=lambda p: -p[1])


def library_versions() -> dict[str, str]:
    """Versions of the libraries a model's behaviour depends on."""
    versions = {"python": platform.python_version()}
    for dist in ("catboost", "numpy", "pandas", "scikit-learn", "bentoml"):
        versions[dist] = dist_version(dist)
    return versions
