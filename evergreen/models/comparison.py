"""Candidate against champion on one held-out window: the scored frame, tables and a plot.

The files of one evaluation live in ``settings.reports_dir / "evaluation" / "cutoff=<day>"``:
``scored.parquet`` (the window's transactions with both models' scores, which the promotion
decision reuses), ``evaluation.json`` (which models, thresholds and metrics), the Evidently
``report.html`` and ``precision_recall.png``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evergreen.metadata import markdown_table
from evergreen.models.metrics import SEGMENTS, Evaluation, format_value
from evergreen.settings import EvergreenSettings

CANDIDATE = "candidate_score"
CHAMPION = "champion_score"
KEPT_COLUMNS = ["transaction_id", "customer_id", "tx_datetime", "label", *SEGMENTS]
SUMMARY_METRICS = {
    "roc_auc": "ROC AUC",
    "average_precision": "average precision",
    "card_precision_at_k": "Card Precision@100",
    "f1": "F1 at threshold",
    "precision": "precision at threshold",
    "recall": "recall at threshold",
    "brier": "Brier score",
    "ece": "calibration error (ECE)",
}


@dataclass(frozen=True)
class EvaluationFiles:
    """Where one cut-off day's evaluation is written."""

    folder: Path

    @classmethod
    def for_cutoff(cls, settings: EvergreenSettings, cutoff: dt.date) -> EvaluationFiles:
        return cls(settings.reports_dir / "evaluation" / f"cutoff={cutoff.isoformat()}")

    @property
    def scored(self) -> Path:
        return self.folder / "scored.parquet"

    @property
    def summary(self) -> Path:
        return self.folder / "evaluation.json"

    @property
    def report(self) -> Path:
        return self.folder / "report.html"

    @property
    def plot(self) -> Path:
        return self.folder / "precision_recall.png"

    def write_summary(self, data: dict) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.summary.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
        return self.summary

    def read_summary(self) -> dict:
        return json.loads(self.summary.read_text())


def last_fitted_day(metadata: dict) -> dt.date | None:
    """The newest transaction day a registered model trained or validated on (its metadata's
    ``days``, ``first..last`` per part), or None when unrecorded."""
    ends = [
        dt.date.fromisoformat(span.split("..")[1])
        for span in (metadata.get("days") or {}).values()
        if span and ".." in span
    ]
    return max(ends) if ends else None


def window_after(frame: pd.DataFrame, day: dt.date | None) -> pd.DataFrame:
    """The rows of ``frame`` whose UTC transaction day is after ``day`` (all when None)."""
    if day is None:
        return frame
    days = frame["tx_datetime"].dt.tz_convert("UTC").dt.date
    return frame[days > day]


def summary_table(candidate: Evaluation, champion: Evaluation | None) -> str:
    """Markdown: each headline metric on the whole window, candidate against champion."""
    c, b = candidate.overall, champion.overall if champion else None
    rows = []
    for key, label in SUMMARY_METRICS.items():
        mine = getattr(c, key)
        theirs = getattr(b, key) if b else None
        delta = mine - theirs if mine is not None and theirs is not None else None
        shown = "n/a" if delta is None else f"{delta:+.3f}"
        rows.append([label, format_value(mine), format_value(theirs), shown])
    rows.append(["rows / frauds", f"{c.rows:,} / {c.positives:,}", "", ""])
    columns = ["metric", "candidate", "champion", "candidate - champion"]
    return markdown_table(columns, rows, align="lrrr")


def segment_table(candidate: Evaluation, champion: Evaluation | None) -> str:
    """Markdown: per segment value, frauds and AUC, AP, CP@100 of both models."""
    theirs = dict(champion.rows()) if champion else {}
    rows = []
    for name, m in candidate.rows()[1:]:
        b = theirs.get(name)
        cells = []
        for key in ("roc_auc", "average_precision", "card_precision_at_k"):
            cells += [format_value(getattr(m, key)), format_value(getattr(b, key) if b else None)]
        rows.append([name, f"{m.rows:,}", f"{m.positives:,}", *cells])
    columns = ["segment", "rows", "frauds", "AUC cand.", "AUC champ.", "AP cand.", "AP champ."]
    columns += ["CP@100 cand.", "CP@100 champ."]
    return markdown_table(columns, rows, align="l" + "r" * 8)


def write_pr_curves(scored: pd.DataFrame, labels: dict[str, str], path: Path) -> Path:
    """Precision-recall curves of each score column (``labels``: column -> legend) as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display in Dagster's worker processes
    import matplotlib.pyplot as plt
    from sklearn.metrics import average_precision_score, precision_recall_curve

    path.parent.mkdir(parents=True, exist_ok=True)
    y = scored["label"].to_numpy(dtype=int)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        for column, legend in labels.items():
            if y.sum() == 0:
                break
            precision, recall, _ = precision_recall_curve(y, scored[column])
            ap = average_precision_score(y, scored[column])
            ax.step(recall, precision, where="post", label=f"{legend} (AP {ap:.3f})")
        ax.axhline(y.mean() if len(y) else 0, color="grey", linestyle=":", label="fraud share")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title("Precision-recall on the held-out window")
        ax.legend(loc="upper right")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
