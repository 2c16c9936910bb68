"""What a person reads about a training run: markdown tables and the learning-curve plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evergreen.metadata import markdown_table
from evergreen.models.training import TrainedModel

TOP_FEATURES = 15


def params_table(params: dict[str, Any]) -> str:
    """The CatBoost parameters as a markdown table."""
    return markdown_table(["parameter", "value"], sorted(params.items()))


def importance_table(importances: list[tuple[str, float]], top: int = TOP_FEATURES) -> str:
    """The ``top`` most important features (CatBoost's PredictionValuesChange, sums to 100)."""
    rows = [
        [rank, name, f"{value:.2f}"]
        for rank, (name, value) in enumerate(importances[:top], start=1)
    ]
    return markdown_table(["rank", "feature", "importance"], rows, align="rlr")


def metrics_table(metrics: dict[str, float]) -> str:
    """Validation metrics as a markdown table."""
    rows = [[name, f"{value:.4f}"] for name, value in metrics.items()]
    return markdown_table(["metric", "validation"], rows, align="lr")


def split_table(rows: dict[str, int], positives: dict[str, int], days: dict[str, str]) -> str:
    """Rows, frauds and days of each part of the time split."""
    table = [
        [part, days.get(part, ""), f"{n:,}", f"{positives.get(part, 0):,}"]
        for part, n in rows.items()
    ]
    return markdown_table(["part", "days", "rows", "frauds"], table, align="llrr")


def write_learning_curve(trained: TrainedModel, path: Path) -> Path:
    """Plot train and validation log loss per iteration, marking the best iteration (PNG)."""
    import matplotlib

    matplotlib.use("Agg")  # no display; safe in Dagster's worker processes
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    try:
        for part, label in (("learn", "train"), ("validation", "validation")):
            ax.plot(trained.learning_curve[part], label=label)
        ax.axvline(trained.best_iteration, color="grey", linestyle="--", label="best iteration")
        ax.set_xlabel("iteration")
        ax.set_ylabel("log loss")
        ax.set_title(f"Learning curve (best iteration {trained.best_iteration})")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
