"""The monitors over time, for a person: live average precision per model and day, and each
feature's drift per day, as frames and as PNG plots (the ``model_monitoring`` asset shows them).

- ``daily_live_ap``: per served day and model version, AP of that day's predictions whose labels
  matured by the day asked about, and AP over the trailing ``performance_window_days`` (one day
  holds a handful of frauds: its AP is noise, the window's is the readable line). A point with
  fewer than ``monitor_min_frauds`` frauds is kept but flagged ``judged = False``, as
  ``live_performance`` would not judge it.
- ``drift_history``: per day and feature, the drift ratio (score against threshold, above 1:
  drifted; ``monitoring.drift_ratio``) from the day's kept drift finding, judged once per day
  (``monitoring.judged_drift``: the drift sensor's finding when it already wrote one).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from evergreen.loop.live_data import matured_predictions
from evergreen.loop.monitors import drift_ratio, evaluation_ap, judged_drift
from evergreen.models.registry import ModelRegistry, UnknownModelError
from evergreen.settings import EvergreenSettings

AP_COLUMNS = [
    "day",
    "model_tag",
    "rows",
    "frauds",
    "ap",
    "judged",
    "window_rows",
    "window_frauds",
    "window_ap",
    "window_judged",
]
DRIFT_COLUMNS = [
    "day",
    "model_tag",
    "share_drifted",
    "feature",
    "method",
    "score",
    "threshold",
    "ratio",
    "drifted",
]
RATIO_CAP = 3.0  # the heatmap's colour scale stops here: past it, "very drifted" is enough


def _average_precision(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """scikit-learn's AP (as ``metrics.slice_metrics``); None without a fraud."""
    from sklearn.metrics import average_precision_score

    if labels.sum() == 0:
        return None
    return float(average_precision_score(labels, scores))


def daily_live_ap(settings: EvergreenSettings, through_day: dt.date) -> pd.DataFrame:
    """Per served day and model version (``AP_COLUMNS``): rows, frauds and AP of the day's
    predictions whose labels landed by ``through_day``, and the same over the model's trailing
    ``performance_window_days`` ending that day. Days without a matured label are absent."""
    from evergreen.warehouse import warehouse

    with warehouse(settings, read_only=True) as conn:
        matured = matured_predictions(conn, settings.start_date, through_day, through_day)
    if matured.empty:
        return pd.DataFrame(columns=AP_COLUMNS)
    window = dt.timedelta(days=settings.performance_window_days - 1)
    points = [
        point
        for tag, rows in matured.groupby("model_version", sort=True)
        for point in _model_points(str(tag), rows, window, settings.monitor_min_frauds)
    ]
    return pd.DataFrame(points, columns=AP_COLUMNS)


def _model_points(tag: str, rows: pd.DataFrame, window: dt.timedelta, least: int) -> list[dict]:
    """One model's points: each of its days alone, and the trailing window ending there."""
    labels = rows["label"].to_numpy(dtype=int)
    scores = rows["fraud_probability"].to_numpy(dtype=float)
    days = pd.to_datetime(rows["partition_date"]).dt.date.to_numpy()
    points = []
    for day in sorted(set(days)):
        today, trailing = days == day, (days >= day - window) & (days <= day)
        frauds, window_frauds = int(labels[today].sum()), int(labels[trailing].sum())
        points.append(
            {
                "day": day,
                "model_tag": tag,
                "rows": int(today.sum()),
                "frauds": frauds,
                "ap": _average_precision(labels[today], scores[today]),
                "judged": frauds >= least,
                "window_rows": int(trailing.sum()),
                "window_frauds": window_frauds,
                "window_ap": _average_precision(labels[trailing], scores[trailing]),
                "window_judged": window_frauds >= least,
            }
        )
    return points


def reference_ap(settings: EvergreenSettings, tags: list[str]) -> dict[str, tuple[float, str]]:
    """Each model's AP when it was promoted and where that figure comes from
    (``monitoring.evaluation_ap``); models unknown to the registry or without one are left out."""
    registry = ModelRegistry(settings)
    out = {}
    for tag in tags:
        try:
            ap, source = evaluation_ap(settings, registry.get(tag))
        except UnknownModelError:
            continue
        if ap is not None:
            out[tag] = (float(ap), source)
    return out


def drift_history(settings: EvergreenSettings, days: list[dt.date]) -> pd.DataFrame:
    """Per day and feature (``DRIFT_COLUMNS``): Evidently's method, score, threshold, the drift
    ratio and whether it drifted, from each day's drift finding (judged once per day, kept under
    ``reports/monitoring/drift``). A day that could not be judged is one row without a feature."""
    rows = []
    for day in days:
        finding = judged_drift(settings, day)
        common = {"day": day, "model_tag": finding.model_tag, "share_drifted": finding.severity}
        if not finding.features:
            rows.append({**common, "feature": None, "ratio": np.nan, "drifted": False})
        for column, d in finding.features.items():
            rows.append(
                {
                    **common,
                    "feature": column,
                    "method": d["method"],
                    "score": d["score"],
                    "threshold": d["threshold"],
                    "ratio": drift_ratio(d),
                    "drifted": bool(d["drifted"]),
                }
            )
    return pd.DataFrame(rows, columns=DRIFT_COLUMNS)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display in Dagster's worker processes
    import matplotlib.pyplot as plt

    return plt


def _date_axis(ax) -> None:
    import matplotlib.dates as mdates

    ax.xaxis.set_major_locator(mdates.AutoDateLocator(maxticks=12))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    for label in ax.get_xticklabels():
        label.set_rotation(30)
        label.set_horizontalalignment("right")


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")  # "tight": keeps a legend below the axes
    return path


def plot_ap_over_time(
    frame: pd.DataFrame, references: dict[str, tuple[float, str]], path: Path
) -> Path:
    """Live AP per model over served days (``daily_live_ap``) as a PNG: the trailing-window AP
    as a line (hollow where too few frauds to judge), each day's own AP as faint dots, and the
    model's reference AP as a dashed line in its colour over the days it served."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    try:
        if frame.empty:
            ax.text(0.5, 0.5, "no matured labels yet", ha="center", transform=ax.transAxes)
        for i, (tag, part) in enumerate(frame.groupby("model_tag", sort=True)):
            colour = f"C{i % 10}"
            days = pd.to_datetime(part["day"])
            window = part["window_ap"].astype(float)
            ax.plot(days, window, "-", color=colour, label=f"{tag} live AP (trailing window)")
            judged = part["window_judged"].astype(bool)
            ax.scatter(days[judged], window[judged], color=colour, zorder=3)
            ax.scatter(days[~judged], window[~judged], facecolors="none", edgecolors=colour)
            ax.scatter(days, part["ap"].astype(float), color=colour, alpha=0.4, s=30, marker="x")
            if tag in references:
                ap, _ = references[tag]
                start, end = days.min(), days.max()
                if start == end:
                    start, end = start - pd.Timedelta(hours=12), end + pd.Timedelta(hours=12)
                ax.hlines(ap, start, end, colors=colour, linestyles="--", label=f"{tag} reference")
        ax.scatter([], [], facecolors="none", edgecolors="grey", label="too few frauds to judge")
        ax.scatter([], [], color="grey", alpha=0.4, s=30, marker="x", label="one day's own AP")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("transaction day (labels matured)")
        ax.set_ylabel("average precision")
        ax.set_title("Live average precision per model on matured labels")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize="small")
        if not frame.empty:
            _date_axis(ax)
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_drift_per_feature(frame: pd.DataFrame, path: Path) -> Path:
    """Each feature's drift per day (``drift_history``) as a PNG heatmap, features x days: the
    colour is the drift ratio (1 = at the threshold; capped at ``RATIO_CAP``), a drifted cell
    is marked x, blank is a day not judged; a dashed line where the serving model changed."""
    from matplotlib.colors import TwoSlopeNorm

    plt = _pyplot()
    days = sorted(frame["day"].unique())
    judged = frame.dropna(subset=["feature"])
    grid = judged.pivot(index="feature", columns="day", values="ratio")
    grid = grid.reindex(columns=days).sort_index()
    drifted = judged.pivot(index="feature", columns="day", values="drifted")
    drifted = drifted.reindex(index=grid.index, columns=days).eq(True)
    fig, ax = plt.subplots(figsize=(max(9.0, 3.0 + 0.45 * len(days)), 2.0 + 0.3 * len(grid)))
    try:
        if grid.empty:
            ax.text(0.5, 0.5, "no day judged yet", ha="center", transform=ax.transAxes)
            return _save(fig, path)
        norm = TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=RATIO_CAP)
        values = np.clip(grid.to_numpy(dtype=float), 0.0, RATIO_CAP)
        image = ax.imshow(values, aspect="auto", cmap="RdYlGn_r", norm=norm)
        for row, col in zip(*np.nonzero(drifted.to_numpy()), strict=True):
            ax.text(col, row, "x", ha="center", va="center", fontsize=8, fontweight="bold")
        for col in _model_changes(frame, days):
            ax.axvline(col - 0.5, color="black", linestyle="--", linewidth=1.2)
        ax.set_yticks(range(len(grid)), labels=list(grid.index), fontsize=8)
        ax.set_xticks(range(len(days)), labels=[str(d) for d in days], fontsize=8)
        for label in ax.get_xticklabels():
            label.set_rotation(45)
            label.set_horizontalalignment("right")
        ax.set_xlabel("transaction day (x: drifted; dashed line: the serving model changed)")
        ax.set_title("Drift per feature from the serving model's training set")
        bar = fig.colorbar(image, ax=ax, extend="max")
        bar.set_label(f"drift ratio: score / threshold (capped at {RATIO_CAP:g})")
        return _save(fig, path)
    finally:
        plt.close(fig)


def _model_changes(frame: pd.DataFrame, days: list) -> list[int]:
    """Column indices of the days whose serving model differs from the day before's."""
    tags = frame.drop_duplicates("day").set_index("day")["model_tag"].reindex(days).tolist()
    return [i for i in range(1, len(tags)) if tags[i] and tags[i - 1] and tags[i] != tags[i - 1]]
