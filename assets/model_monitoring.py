"""Model monitoring for a person: live average precision per model over the served days, and
each feature's drift per day, as plots in the asset's metadata, and each day added to the
Evidently UI workspace (``evergreen.dashboards.evidently_workspace``, opened by ``make ui``).

``model_monitoring`` reads every partition of ``live_predictions`` and ``raw_labels`` from the
warehouse (read-only: it never takes the DuckDB writer, so it needs no warehouse pool) and
refreshes whenever any of them changes. A day's drift is judged once: the drift sensor's kept
finding is read back, and a day the sensor has not judged yet is judged here and kept for it.
"""

import datetime as dt

from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.automation import refresh_on_any_upstream_partition
from evergreen.metadata import markdown_table
from evergreen.resources import EvergreenResource

TOP_FEATURES = 8


@asset(
    deps=[
        AssetDep(AssetKey("live_predictions"), partition_mapping=AllPartitionMapping()),
        AssetDep(AssetKey("raw_labels"), partition_mapping=AllPartitionMapping()),
    ],
    kinds={"python", "evidently"},
    group_name="monitoring",
    code_version="model-monitoring-3",
    automation_condition=refresh_on_any_upstream_partition(),
)
def model_monitoring(
    context: AssetExecutionContext, evergreen: EvergreenResource
) -> MaterializeResult:
    """Live AP per model and served day on matured labels (beside each model's reference AP),
    each feature's drift per served day, and AP per day served vs frozen vs oracle with the
    loop's alarms, retrains, promotions and rollbacks, as PNG plots and tables; and every
    served day in the Evidently UI workspace (a project per model line, a dashboard of drift
    and quality over time; re-running adds no day twice)."""
    from evergreen.dashboards.evidently_workspace import publish_monitoring, workspace_path
    from evergreen.loop.live_data import logged_days, newest_label_day
    from evergreen.loop.monitoring_history import (
        daily_live_ap,
        drift_history,
        plot_ap_over_time,
        plot_drift_per_feature,
        reference_ap,
    )
    from evergreen.metadata import plot_metadata
    from evergreen.warehouse import warehouse

    settings = evergreen.settings()
    with warehouse(settings, read_only=True) as conn:
        served = logged_days(conn)
        labels_through = newest_label_day(conn)
    if not served:
        said = "Nothing served yet: `live_predictions` holds no logged prediction."
        context.log.info(said)
        return MaterializeResult(metadata={"status": "nothing served yet", "summary": said})
    # No labels loaded at all: nothing can have matured, whatever day is asked about.
    ap = daily_live_ap(settings, labels_through or settings.start_date)
    references = reference_ap(settings, sorted(ap["model_tag"].unique()))
    drift = drift_history(settings, list(served))
    folder = settings.reports_dir / "monitoring"
    recovery_png, recovery = _recovery_plot(settings, list(served), folder / "recovery.png")
    ap_png = plot_ap_over_time(ap, references, folder / "live_ap.png")
    drift_png = plot_drift_per_feature(drift, folder / "drift_per_feature.png")
    summary = _summary(served, ap, labels_through)
    context.log.info(summary)
    published = publish_monitoring(settings, list(served), labels_through)
    context.log.info(published.summary())
    return MaterializeResult(
        metadata={
            "status": "monitored",
            "summary": MetadataValue.md(summary),
            **plot_metadata(settings, "live_ap", ap_png, "live AP per model"),
            **plot_metadata(settings, "drift", drift_png, "drift per feature"),
            **plot_metadata(settings, "recovery", recovery_png, "served vs frozen vs oracle"),
            "recovery": MetadataValue.md(recovery),
            "models": MetadataValue.md(_models_table(ap, references)),
            "most_drifted_features": MetadataValue.md(_drift_table(drift)),
            "days_served": len(served),
            "days_with_matured_labels": int(ap["day"].nunique()),
            "logged_predictions": sum(served.values()),
            "matured_predictions": int(ap["rows"].sum()),
            "labels_through": str(labels_through),
            "drift_findings": MetadataValue.path(str(folder / "drift")),
            "evidently_workspace": MetadataValue.path(str(workspace_path(settings))),
            "evidently": MetadataValue.md(
                published.summary() + " Open it with `make ui` (the Evidently UI's address "
                "is printed beside Dagster's)."
            ),
            "evidently_snapshots_written": len(published.written),
        }
    )


def _recovery_plot(settings, days: list[dt.date], path):
    """AP per day served vs frozen (the first champion) vs the oracle (where its scores were
    kept: the demo and the benchmark compute it), with the loop's events; the drift's start is
    the loop's own: the first day of the newest confirmed drift. Returns (png, words)."""
    from evergreen.loop.recovery import (
        daily_recovery,
        loop_events,
        plot_recovery,
        recovery_days,
    )
    from evergreen.loop.retrain_policy import RetrainGovernor

    frame = daily_recovery(settings, days[0], days[-1])
    episode = RetrainGovernor(settings).drift_episode(days[-1])
    start = episode.first_day if episode else None
    png = plot_recovery(frame, loop_events(settings), start, path)
    if start is None:
        return png, "No drift confirmed over the served days."
    if frame["oracle_ap"].isna().all():
        return png, f"Drift confirmed from {start}; no oracle scores kept to judge recovery."
    days_ = recovery_days(frame, start)
    said = "not yet" if days_ is None else f"{days_} day(s) after {start}"
    return png, f"Drift confirmed from {start}; served AP >= 90 % of the oracle's: {said}."


def _summary(served: dict[dt.date, int], ap, labels_through: dt.date | None) -> str:
    days = list(served)
    matured = ap["day"].nunique()
    return (
        f"{len(days)} day(s) served ({days[0]}..{days[-1]}, {sum(served.values()):,} logged "
        f"predictions); {matured} of them with labels matured by {labels_through or '-'} "
        f"({int(ap['rows'].sum()):,} predictions, {ap['model_tag'].nunique()} model(s))."
    )


def _number(value, digits: int = 3) -> str:
    if value is None or value != value:  # None or NaN: not defined there
        return "n/a"
    return f"{value:.{digits}f}"


def _models_table(ap, references: dict[str, tuple[float, str]]) -> str:
    """Per model, its newest matured day: live AP over the trailing window and that day, beside
    the reference AP it was promoted on."""
    rows = []
    for tag, part in ap.sort_values("day").groupby("model_tag", sort=False):
        last = part.iloc[-1]
        ref, source = references.get(tag, (None, "-"))
        rows.append(
            [
                f"`{tag}`",
                len(part),
                last["day"],
                _number(last["window_ap"]),
                f"{int(last['window_rows']):,} / {int(last['window_frauds'])}",
                "yes" if last["window_judged"] else "no: too few frauds",
                _number(last["ap"]),
                _number(ref),
                source,
            ]
        )
    if not rows:
        return "No matured labels yet."
    columns = ["model", "matured days", "newest day", "live AP (window)", "window rows / frauds"]
    columns += ["judged", "live AP (day)", "reference AP", "reference from"]
    return markdown_table(columns, rows, align="lrlrrlrrl")


def _drift_table(drift) -> str:
    """The newest judged day's most drifted features."""
    judged = drift.dropna(subset=["feature"])
    if judged.empty:
        return "No served day judged for drift yet."
    day = judged["day"].max()
    newest = judged[judged["day"] == day].sort_values("ratio", ascending=False)
    first = newest.iloc[0]
    title = (
        f"**{day}**, served by `{first['model_tag']}`: {int(newest['drifted'].sum())} of "
        f"{len(newest)} features drifted (share {first['share_drifted']:.0%})."
    )
    rows = [
        [
            row["feature"],
            row["method"],
            f"{row['score']:.4g}",
            f"{row['threshold']:.4g}",
            f"{row['ratio']:.2f}",
            "yes" if row["drifted"] else "no",
        ]
        for _, row in newest.head(TOP_FEATURES).iterrows()
    ]
    columns = ["feature", "method", "score", "threshold", "drift ratio", "drifted"]
    return title + "\n\n" + markdown_table(columns, rows, align="llrrr")
