"""Quality of one model's scores on a labelled window: overall and per customer segment.

Definitions (all on transactions unless said otherwise):

- ROC AUC and average precision: scikit-learn's, on the raw scores.
- Precision, recall and F1 at the operating threshold: a transaction is flagged when its score is
  >= the threshold.
- Brier score: mean squared difference between score and label (scikit-learn's).
- Expected calibration error (ECE): 10 EQUAL-WIDTH score bins [0, 0.1), ..., [0.9, 1.0]; the
  row-weighted mean over bins of |fraud share - mean score|. Equal width (not quantile) bins, so
  that the many near-zero scores of a rare-fraud problem share one bin and a model that
  inflates its scores cannot hide the miscalibration inside narrow low-score bins.
- Card Precision@k (the Fraud Detection Handbook's, chapter 4): each day, each card (customer)
  gets its highest score and its highest label of that day; the k cards with the highest scores
  are "checked"; the day's value is (frauds among them) / k, with k the divisor even when fewer
  than k cards transacted; cards found compromised on an earlier day are left out of later days;
  the metric is the mean over days. Ties are broken by customer id so the value is reproducible.

A metric that is undefined on a frame is None, never an error: AUC, AP, recall, F1 and
Card Precision@k without a positive; AUC also without a negative; precision when nothing is
flagged; everything on an empty frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from evergreen.metadata import markdown_table
from evergreen.models.gate_policy import SEGMENTS  # noqa: E402  (one list of segments)

CALIBRATION_BINS = 10
TOP_K_CARDS = 100


@dataclass(frozen=True)
class Metrics:
    """One model's quality on one set of transactions (None: undefined there)."""

    rows: int
    positives: int
    roc_auc: float | None
    average_precision: float | None
    f1: float | None
    precision: float | None
    recall: float | None
    brier: float | None
    ece: float | None
    card_precision_at_k: float | None

    def to_dict(self) -> dict:
        return asdict(self)


# Column headers of the markdown tables, in the order shown.
METRIC_LABELS = {
    "rows": "rows",
    "positives": "frauds",
    "roc_auc": "ROC AUC",
    "average_precision": "AP",
    "f1": "F1",
    "precision": "precision",
    "recall": "recall",
    "brier": "Brier",
    "ece": "ECE",
    "card_precision_at_k": "CP@k",
}


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one score column: overall and for each value of each segment column."""

    score_column: str
    threshold: float
    k: int
    overall: Metrics
    segments: dict[str, dict[str, Metrics]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain JSON-able data: overall metrics and segments[column][value] metrics."""
        return {
            "score_column": self.score_column,
            "threshold": self.threshold,
            "k": self.k,
            "overall": self.overall.to_dict(),
            "segments": {
                column: {value: m.to_dict() for value, m in values.items()}
                for column, values in self.segments.items()
            },
        }

    def rows(self) -> list[tuple[str, Metrics]]:
        """(label, metrics): "all" first, then "column=value" for every segment value."""
        out = [("all", self.overall)]
        for column, values in self.segments.items():
            out.extend((f"{column}={value}", m) for value, m in values.items())
        return out

    def to_markdown(self) -> str:
        """One table: a row for all transactions, then one per segment value."""
        columns = ["slice", *(_label(k, self.k) for k in METRIC_LABELS)]
        rows = [
            [name, *(format_value(getattr(metrics, k)) for k in METRIC_LABELS)]
            for name, metrics in self.rows()
        ]
        table = markdown_table(columns, rows, align="l" + "r" * len(METRIC_LABELS))
        return f"`{self.score_column}` at threshold {self.threshold:.4g}\n\n{table}"


def _label(key: str, k: int) -> str:
    return f"CP@{k}" if key == "card_precision_at_k" else METRIC_LABELS[key]


def format_value(value: float | int | None) -> str:
    """A metric for a table: integers with separators, floats to 3 decimals, None as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    return f"{value:.3f}"


def evaluate(
    frame: pd.DataFrame,
    score_column: str,
    threshold: float,
    segments: Sequence[str] = SEGMENTS,
    k: int = TOP_K_CARDS,
) -> Evaluation:
    """Metrics of ``score_column`` overall and per value of each segment column.

    ``frame`` needs ``label`` (0/1), ``customer_id``, ``tx_datetime`` (the day of Card
    Precision@k is its UTC date), the segment columns and the score column (probabilities in
    [0, 1], no missing values)."""
    _require(frame, ["label", "customer_id", "tx_datetime", score_column, *segments])
    scores = frame[score_column].to_numpy(dtype=float)
    if not np.isfinite(scores).all() or (scores < 0).any() or (scores > 1).any():
        raise ValueError(f"Column {score_column!r} must hold probabilities in [0, 1], no NaN.")
    overall = slice_metrics(frame, score_column, threshold, k)
    by_segment = {
        column: {
            str(value): slice_metrics(part, score_column, threshold, k)
            for value, part in frame.groupby(column, sort=True, observed=True)
        }
        for column in segments
    }
    return Evaluation(score_column, float(threshold), k, overall, by_segment)


def _require(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"The frame to evaluate lacks column(s) {missing}.")


def slice_metrics(frame: pd.DataFrame, score_column: str, threshold: float, k: int) -> Metrics:
    """All metrics on one set of transactions (see the module docstring for definitions)."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    labels = frame["label"].to_numpy(dtype=int)
    scores = frame[score_column].to_numpy(dtype=float)
    rows, positives = len(labels), int(labels.sum())
    if rows == 0:
        return Metrics(0, 0, *([None] * 8))
    has_pos, has_neg = positives > 0, positives < rows
    flagged = scores >= threshold
    tp = int((flagged & (labels == 1)).sum())
    n_flagged = int(flagged.sum())
    precision = tp / n_flagged if n_flagged else None
    recall = tp / positives if has_pos else None
    f1 = 2 * tp / (n_flagged + positives) if has_pos else None
    return Metrics(
        rows=rows,
        positives=positives,
        roc_auc=float(roc_auc_score(labels, scores)) if has_pos and has_neg else None,
        average_precision=float(average_precision_score(labels, scores)) if has_pos else None,
        f1=f1,
        precision=precision,
        recall=recall,
        brier=float(brier_score_loss(labels, scores, pos_label=1)),
        ece=expected_calibration_error(labels, scores),
        card_precision_at_k=(card_precision_at_k(frame, score_column, k) if has_pos else None),
    )


def expected_calibration_error(
    labels: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS
) -> float | None:
    """Row-weighted mean |fraud share - mean score| over equal-width score bins (None if empty).

    A score of exactly 1.0 falls in the last bin."""
    labels = np.asarray(labels, dtype=float)
    scores = np.asarray(scores, dtype=float)
    if len(scores) == 0:
        return None
    index = np.minimum((scores * bins).astype(int), bins - 1)
    counts = np.bincount(index, minlength=bins)
    gap = np.abs(
        np.bincount(index, weights=labels, minlength=bins)
        - np.bincount(index, weights=scores, minlength=bins)
    )
    # sum over bins of n_b / N * |sum_b(label - score) / n_b| = sum_b |...| / N
    return float(gap.sum() / counts.sum())


def card_precision_at_k(
    frame: pd.DataFrame, score_column: str, k: int = TOP_K_CARDS, remove_detected: bool = True
) -> float | None:
    """The handbook's Card Precision@k, averaged over the UTC days of ``tx_datetime``.

    None on an empty frame. ``remove_detected`` leaves cards found compromised on an earlier
    day out of later days, as the handbook does by default."""
    if frame.empty:
        return None
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    days = pd.to_datetime(frame["tx_datetime"], utc=True).dt.date
    cards = (
        frame.assign(_day=days.to_numpy())
        .groupby(["_day", "customer_id"], sort=True)
        .agg(score=(score_column, "max"), label=("label", "max"))
        .reset_index()
    )
    detected: set = set()
    daily = []
    for _, day_cards in cards.groupby("_day", sort=True):
        if detected:
            day_cards = day_cards[~day_cards["customer_id"].isin(detected)]
        top = day_cards.sort_values(["score", "customer_id"], ascending=[False, True]).head(k)
        found = top.loc[top["label"] == 1, "customer_id"]
        daily.append(len(found) / k)
        if remove_detected:
            detected.update(found.tolist())
    return float(np.mean(daily))
