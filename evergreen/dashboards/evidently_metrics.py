"""Evergreen's monitoring as Evidently (0.7) metrics, so each day lands in an Evidently UI
project as a snapshot its dashboard panels can plot over time.

Two kinds of day, two kinds of snapshot:

- drift: the day's kept drift finding (``loop.monitors.judged_drift``: Evidently judged every
  feature once, for the drift sensor or ``model_monitoring``) as a table of figures
  (``drift_table``); ``DriftShare``, ``FeatureDriftRatio`` and ``SegmentDriftShare`` read it.
  Nothing is judged again: the snapshot shows what the loop acted on.
- quality: the day's predictions whose labels matured, of one model version;
  ``MaturedAveragePrecision`` (scikit-learn's AP, as the loop's monitors), ``MaturedPrecision``
  and ``MaturedRecall`` at the threshold each prediction was served with, and the counts,
  overall (segment ``all``) or within one segment value (``region=north_west``).

Evidently has no average precision, and its own classification metrics take one dataset per
report (a report per segment value would be ten a day); these metrics take the segment as a
parameter, so one report holds a day's figures and a panel picks a segment by its label.
"""

from __future__ import annotations

from abc import ABC
from typing import ClassVar, Generic, TypeVar

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset
from evidently.core.metric_types import SingleValueCalculation, SingleValueMetric

from evergreen.models.metrics import SEGMENTS

ALL = "all"  # the segment of every row
DRIFT_COLUMNS = ["kind", "name", "value"]


# --- drift: figures of the kept finding ---------------------------------------------------


def drift_table(share: float, features: dict[str, float], segments: dict[str, float]) -> Dataset:
    """A finding's figures as the dataset the drift metrics read: the share of features
    drifted, each feature's drift ratio and each judged segment value's share drifted."""
    rows = [("share", "all", float(share))]
    rows += [("feature", name, float(v)) for name, v in sorted(features.items())]
    rows += [("segment", name, float(v)) for name, v in sorted(segments.items())]
    frame = pd.DataFrame(rows, columns=DRIFT_COLUMNS)
    definition = DataDefinition(numerical_columns=["value"], categorical_columns=["kind", "name"])
    return Dataset.from_pandas(frame, data_definition=definition)


def _figure(data: Dataset, kind: str, name: str) -> float:
    frame = data.as_dataframe()
    found = frame[(frame["kind"] == kind) & (frame["name"] == name)]["value"]
    if found.empty:
        raise ValueError(f"the drift table has no {kind} {name!r}")
    return float(found.iloc[0])


class DriftShare(SingleValueMetric):
    """The share of features drifted on the day (the finding's severity)."""


class DriftShareCalculation(SingleValueCalculation[DriftShare]):
    def calculate(self, context, current_data: Dataset, reference_data):
        return self.result(_figure(current_data, "share", "all"))

    def display_name(self) -> str:
        return "Share of features drifted"


class FeatureDriftRatio(SingleValueMetric):
    """One feature's drift ratio: Evidently's score against its threshold, comparable across
    methods (above 1: drifted; ``loop.monitors.drift_ratio``)."""

    column: str


class FeatureDriftRatioCalculation(SingleValueCalculation[FeatureDriftRatio]):
    def calculate(self, context, current_data: Dataset, reference_data):
        return self.result(_figure(current_data, "feature", self.metric.column))

    def display_name(self) -> str:
        return f"Drift ratio of {self.metric.column} (score / threshold)"


class SegmentDriftShare(SingleValueMetric):
    """Within one segment value, the share of the other features drifted."""

    segment: str


class SegmentDriftShareCalculation(SingleValueCalculation[SegmentDriftShare]):
    def calculate(self, context, current_data: Dataset, reference_data):
        return self.result(_figure(current_data, "segment", self.metric.segment))

    def display_name(self) -> str:
        return f"Share of features drifted within {self.metric.segment}"


# --- quality: one day's matured predictions of one model version --------------------------

QUALITY_COLUMNS = ["label", "fraud_probability", "threshold", *SEGMENTS]


def matured_dataset(frame: pd.DataFrame) -> Dataset:
    """Matured predictions (``loop.live_data.matured_predictions`` rows) as the dataset the
    quality metrics read."""
    data = frame[QUALITY_COLUMNS].reset_index(drop=True).copy()
    data["label"] = data["label"].astype(int)
    for column in SEGMENTS:
        data[column] = data[column].astype(str)
    definition = DataDefinition(
        numerical_columns=["label", "fraud_probability", "threshold"],
        categorical_columns=list(SEGMENTS),
    )
    return Dataset.from_pandas(data, data_definition=definition)


def segment_rows(frame: pd.DataFrame, segment: str) -> pd.DataFrame:
    """The rows of ``segment`` (``all``, or ``column=value``)."""
    if segment == ALL:
        return frame
    column, _, value = segment.partition("=")
    return frame[frame[column].astype(str) == value]


def quality_figures(frame: pd.DataFrame) -> dict[str, float | None]:
    """Rows, frauds, AP, precision and recall at the served thresholds; None where undefined
    (AP and recall without a fraud, precision without a flagged transaction)."""
    from sklearn.metrics import average_precision_score

    labels = frame["label"].to_numpy(dtype=int)
    scores = frame["fraud_probability"].to_numpy(dtype=float)
    flagged = scores >= frame["threshold"].to_numpy(dtype=float)
    frauds, caught = int(labels.sum()), int((flagged & (labels == 1)).sum())
    return {
        "rows": float(len(frame)),
        "frauds": float(frauds),
        "average_precision": float(average_precision_score(labels, scores)) if frauds else None,
        "precision": caught / int(flagged.sum()) if flagged.any() else None,
        "recall": caught / frauds if frauds else None,
    }


class _SegmentQuality(SingleValueMetric):
    model_version: str
    segment: str = ALL


TQuality = TypeVar("TQuality", bound=_SegmentQuality)


class _SegmentQualityCalculation(SingleValueCalculation[TQuality], Generic[TQuality], ABC):
    """One figure of ``quality_figures`` on the metric's segment."""

    figure: ClassVar[str]
    label: ClassVar[str]

    def calculate(self, context, current_data: Dataset, reference_data):
        rows = segment_rows(current_data.as_dataframe(), self.metric.segment)
        value = quality_figures(rows)[self.figure]
        if value is None:
            raise ValueError(f"{self.display_name()} is undefined: see quality_figures")
        return self.result(value)

    def display_name(self) -> str:
        where = "" if self.metric.segment == ALL else f" within {self.metric.segment}"
        return f"{self.label} of {self.metric.model_version} on matured labels{where}"


class MaturedAveragePrecision(_SegmentQuality):
    """Average precision of the day's matured predictions (scikit-learn's, as the monitors)."""


class MaturedAveragePrecisionCalculation(_SegmentQualityCalculation[MaturedAveragePrecision]):
    figure, label = "average_precision", "Average precision"


class MaturedPrecision(_SegmentQuality):
    """Precision at the threshold each prediction was served with."""


class MaturedPrecisionCalculation(_SegmentQualityCalculation[MaturedPrecision]):
    figure, label = "precision", "Precision"


class MaturedRecall(_SegmentQuality):
    """Recall (frauds caught) at the threshold each prediction was served with."""


class MaturedRecallCalculation(_SegmentQualityCalculation[MaturedRecall]):
    figure, label = "recall", "Recall"


class MaturedTransactions(_SegmentQuality):
    """How many of the day's predictions have a matured label."""


class MaturedTransactionsCalculation(_SegmentQualityCalculation[MaturedTransactions]):
    figure, label = "rows", "Transactions"


class MaturedFrauds(_SegmentQuality):
    """How many of them are frauds."""


class MaturedFraudsCalculation(_SegmentQualityCalculation[MaturedFrauds]):
    figure, label = "frauds", "Frauds"


QUALITY_METRICS = {
    "average_precision": MaturedAveragePrecision,
    "precision": MaturedPrecision,
    "recall": MaturedRecall,
    "rows": MaturedTransactions,
    "frauds": MaturedFrauds,
}


def quality_metrics(frame: pd.DataFrame, model_version: str) -> list[SingleValueMetric]:
    """The quality metrics defined on ``frame``: each figure overall and per segment value
    present, leaving out those undefined there (no fraud, nothing flagged)."""
    segments = [ALL] + [
        f"{column}={value}"
        for column in SEGMENTS
        for value in sorted(np.unique(frame[column].astype(str)))
    ]
    metrics = []
    for segment in segments:
        figures = quality_figures(segment_rows(frame, segment))
        for name, value in figures.items():
            if value is not None:
                metrics.append(QUALITY_METRICS[name](model_version=model_version, segment=segment))
    return metrics
