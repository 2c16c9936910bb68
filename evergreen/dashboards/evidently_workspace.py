"""The Evidently UI workspace (``$EVERGREEN_HOME/evidently``): a project per model line
(``fraud_detector``, the registry's model name), a snapshot per monitored day, and a dashboard
of drift and quality over time. ``evergreen ui`` serves it with ``evidently ui``.

``publish_monitoring`` is called by the ``model_monitoring`` asset with the served days it has
just monitored. Per day it adds the day's drift (the kept finding: nothing is judged again) and,
per model version that served the day, its quality on the labels matured so far
(``evidently_metrics``). Adding is idempotent and deterministic: a snapshot's id is derived from
(model line, kind, day, model version), its timestamp is the data day's midnight (UTC), and it
records a digest of its inputs; a day whose inputs did not change is left as it is, one whose
labels matured further is rewritten in place (never a second snapshot of the same day). The
dashboard is derived from the features and segments present, with ids derived likewise, so
rewriting it changes nothing a person set up by hand unless the panels themselves changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd

from evergreen.settings import EvergreenSettings

# Every id of the workspace is a UUID5 in this namespace: the same project, day and panel get
# the same id on every machine and every run.
NAMESPACE = uuid.UUID("6f1f0a3e-5c43-4d1e-9a55-2b1f3c9e7d10")
DRIFT, QUALITY = "drift", "quality"
DASHBOARD_TABS = ("Drift", "Quality", "Segments")


def workspace_path(settings: EvergreenSettings) -> Path:
    """Where the workspace lives: ``<home>/evidently``."""
    return settings.home / "evidently"


def model_line(model_tag: str) -> str:
    """A model version's line: the registry name before the version (``fraud_detector``)."""
    return model_tag.partition(":")[0]


def project_id(line: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"project/{line}")


def snapshot_id(line: str, kind: str, day: dt.date, model_version: str = "") -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"snapshot/{line}/{kind}/{day.isoformat()}/{model_version}")


def _uid(*parts: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, "/".join(parts))


def day_timestamp(day: dt.date) -> dt.datetime:
    """A data day as the snapshot's timestamp (midnight UTC, naive as Evidently keeps it)."""
    return dt.datetime.combine(day, dt.time())


@dataclass
class Published:
    """What ``publish_monitoring`` did: snapshots written (new or changed) and left as they
    were, per model line."""

    written: list[str] = field(default_factory=list)  # "line kind day [version]"
    unchanged: int = 0
    lines: set[str] = field(default_factory=set)
    # per line: the features and segments its panels draw ("FeatureDriftRatio", ...)
    labels: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    def saw(self, line: str, kind: str, names: Iterable[str]) -> None:
        mine = self.labels.setdefault(line, {})
        mine.setdefault(kind, set()).update(names)

    def summary(self) -> str:
        if not self.lines:
            return "Evidently workspace: nothing to publish yet."
        return (
            f"Evidently workspace, project(s) {', '.join(sorted(self.lines))}: "
            f"{len(self.written)} day snapshot(s) written, {self.unchanged} unchanged."
        )


def _open(settings: EvergreenSettings):
    """The workspace's files. Evidently's file store itself, not ``Workspace``: that one
    parses every snapshot of every project when opened, and a publish reads none of them."""
    from evidently.ui.storage.local.base import LocalState

    path = workspace_path(settings)
    path.mkdir(parents=True, exist_ok=True)
    return LocalState(str(path))


def ensure_project(store, line: str) -> None:
    """The model line's project, created with its derived id the first time."""
    from evidently.sdk.models import ProjectModel

    try:
        store.read_project(project_id(line))
        return
    except FileNotFoundError:
        pass
    description = (
        f"Evergreen's {line} models: per data day, drift of what serving saw from the serving "
        "model's training set, and quality on the labels matured so far, per segment."
    )
    store.write_project(ProjectModel(id=project_id(line), name=line, description=description))


def _digest(payload: object) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _kept_digest(store, line: str, sid: uuid.UUID) -> str | None:
    path = Path(store.path) / str(project_id(line)) / "snapshots" / f"{sid}.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text()).get("metadata", {}).get("inputs")
    except json.JSONDecodeError:  # a write cut short: write it again
        return None


def _write(store, line: str, sid: uuid.UUID, snapshot) -> None:
    """Write the snapshot under its derived id (``Workspace.add_run`` would draw a new one)."""
    store.write_snapshot(project_id(line), sid, snapshot.to_snapshot_model())


def _publish(store, published: Published, key: tuple, inputs: object, build) -> None:
    """Write snapshot ``key`` = (line, kind, day, version) unless its inputs are unchanged."""
    line, kind, day, version = key
    sid = snapshot_id(line, kind, day, version)
    digest = _digest(inputs)
    published.lines.add(line)
    if _kept_digest(store, line, sid) == digest:
        published.unchanged += 1
        return
    ensure_project(store, line)
    metadata = {"inputs": digest, "day": day.isoformat(), "kind": kind}
    if version:
        metadata["model_version"] = version
    _write(store, line, sid, build(metadata))
    published.written.append(" ".join(str(p) for p in (line, kind, day, version) if p))


def _drift_inputs(finding) -> dict:
    from evergreen.loop.monitors import drift_ratio

    return {
        "model_tag": finding.model_tag,
        "share": finding.severity,
        "features": {c: drift_ratio(d) for c, d in finding.features.items()},
        "segments": {
            k: s["share_drifted"]
            for k, s in finding.segments.items()
            if s.get("share_drifted") is not None
        },
    }


def _drift_snapshot(day: dt.date, inputs: dict, metadata: dict):
    from evidently import Report

    from evergreen.dashboards import evidently_metrics as em

    metrics = [em.DriftShare()]
    metrics += [em.FeatureDriftRatio(column=c) for c in sorted(inputs["features"])]
    metrics += [em.SegmentDriftShare(segment=s) for s in sorted(inputs["segments"])]
    table = em.drift_table(inputs["share"], inputs["features"], inputs["segments"])
    return Report(metrics).run(
        table,
        None,
        timestamp=day_timestamp(day),
        metadata={**metadata, "serving_model": inputs["model_tag"]},
        tags=[DRIFT],
        name=f"drift {day}",
    )


def _quality_inputs(frame: pd.DataFrame) -> dict:
    rows = frame.sort_values(["transaction_id"])[
        ["transaction_id", "label", "fraud_probability", "threshold"]
    ]
    hashed = pd.util.hash_pandas_object(rows, index=False).to_numpy()
    return {"rows": len(rows), "hash": hashlib.sha256(hashed.tobytes()).hexdigest()}


def _quality_snapshot(day: dt.date, version: str, frame: pd.DataFrame, metadata: dict):
    from evidently import Report

    from evergreen.dashboards import evidently_metrics as em

    return Report(em.quality_metrics(frame, version)).run(
        em.matured_dataset(frame),
        None,
        timestamp=day_timestamp(day),
        metadata=metadata,
        tags=[QUALITY],
        name=f"quality {day} {version}",
    )


def publish_monitoring(
    settings: EvergreenSettings, days: Iterable[dt.date], labels_through: dt.date | None
) -> Published:
    """Add each of ``days`` to its model line's project: its kept drift finding and, per model
    version, its quality on labels landed by ``labels_through``; then (re)write the dashboard
    of every line touched. Days without a whole drift finding or a matured label are skipped
    for that kind (they are added once they have one)."""
    from evergreen.loop.live_data import matured_predictions
    from evergreen.loop.monitors import read_drift
    from evergreen.warehouse import warehouse

    days = sorted(set(days))
    store = _open(settings)
    published = Published()
    for day in days:
        finding = read_drift(settings, day)
        if finding is None or not finding.model_tag:
            continue
        inputs = _drift_inputs(finding)
        key = (model_line(finding.model_tag), DRIFT, day, "")
        published.saw(key[0], "FeatureDriftRatio", inputs["features"])
        published.saw(key[0], "SegmentDriftShare", inputs["segments"])
        _publish(store, published, key, inputs, partial(_drift_snapshot, day, inputs))
    if days and labels_through is not None:
        with warehouse(settings, read_only=True) as conn:
            matured = matured_predictions(conn, days[0], days[-1], labels_through)
        if not matured.empty:
            matured["day"] = pd.to_datetime(matured["partition_date"]).dt.date
        for (day, version), frame in _by_day_and_version(matured, set(days)):
            key = (model_line(version), QUALITY, day, version)
            published.saw(key[0], "quality", _segment_values(frame))
            _publish(
                store,
                published,
                key,
                _quality_inputs(frame),
                partial(_quality_snapshot, day, version, frame),
            )
    for line in sorted(published.lines):
        save_dashboard(store, line, published.labels.get(line, {}))
    return published


def _segment_values(frame: pd.DataFrame) -> list[str]:
    from evergreen.models.metrics import SEGMENTS

    return [f"{c}={v}" for c in SEGMENTS for v in frame[c].astype(str).unique()]


def _by_day_and_version(matured: pd.DataFrame, days: set[dt.date]):
    if matured.empty:
        return []
    wanted = matured[matured["day"].isin(days)]
    return [(key, frame) for key, frame in wanted.groupby(["day", "model_version"], sort=True)]


def _kept_labels(store, line: str) -> dict[str, set[str]]:
    """The features and segments the line's saved dashboard already draws (its panels' metric
    labels): a call with fewer days never drops a line another day added."""
    kept = {"FeatureDriftRatio": set(), "SegmentDriftShare": set(), "quality": set()}
    for panel in store.read_dashboard(project_id(line)).panels:
        for value in panel.values:
            kind = value.metric.rsplit(":", 1)[-1]
            label = value.metric_labels.get("column") or value.metric_labels.get("segment")
            if label and label != "all":
                kept["quality" if kind.startswith("Matured") else kind].add(label)
    return kept


def dashboard_model(
    line: str, features: list[str], drift_segments: list[str], quality_segments: list[str]
):
    """The line's dashboard: tabs Drift, Quality and Segments with their panels, every id
    derived from (line, panel title)."""
    from evidently.sdk.models import DashboardModel, DashboardTabModel, PanelMetric
    from evidently.sdk.panels import bar_plot_panel, line_plot_panel

    def panel(maker, tab: str, title: str, values: list, description: str, **options):
        made = maker(title=title, values=values, description=description, **options)
        made.id = _uid("panel", line, tab, title)
        return tab, made

    def quality(metric: str, legend: str, segment: str = "all") -> PanelMetric:
        return PanelMetric(
            metric=metric,
            legend=f"{legend} {{{{model_version}}}}",
            metric_labels={"segment": segment},
            tags=[QUALITY],
        )

    drift_tag = [DRIFT]
    panels = [
        panel(
            line_plot_panel,
            "Drift",
            "Share of features drifted",
            [PanelMetric(metric="DriftShare", legend="share drifted", tags=drift_tag)],
            "Per data day, from the drift finding the loop acted on (Evidently's per-feature "
            "tests against the serving model's training set).",
        ),
        panel(
            line_plot_panel,
            "Drift",
            "Drift ratio per feature (score / threshold; above 1: drifted)",
            [
                PanelMetric(
                    metric="FeatureDriftRatio",
                    legend=name,
                    metric_labels={"column": name},
                    tags=drift_tag,
                )
                for name in features
            ],
            "Comparable across Evidently's methods: distances above their threshold and "
            "p-values below theirs both read above 1.",
        ),
        panel(
            line_plot_panel,
            "Drift",
            "Share of features drifted within each segment value",
            [
                PanelMetric(
                    metric="SegmentDriftShare",
                    legend=name,
                    metric_labels={"segment": name},
                    tags=drift_tag,
                )
                for name in drift_segments
            ],
            "Segment values with too few rows that day are not judged (no point).",
        ),
        panel(
            line_plot_panel,
            "Quality",
            "Average precision on matured labels",
            [quality("MaturedAveragePrecision", "AP")],
            "Per transaction day and model version, on the labels landed so far; a day's "
            "point moves while its labels mature.",
        ),
        panel(
            line_plot_panel,
            "Quality",
            "Precision and recall at the served threshold",
            [quality("MaturedPrecision", "precision"), quality("MaturedRecall", "recall")],
            "The decision each prediction was served with, against its matured label.",
        ),
        panel(
            bar_plot_panel,
            "Quality",
            "Matured transactions and frauds",
            [quality("MaturedTransactions", "transactions"), quality("MaturedFrauds", "frauds")],
            "How much each day's quality figures rest on.",
        ),
    ]
    by_column: dict[str, list[str]] = {}
    for segment in quality_segments:
        by_column.setdefault(segment.partition("=")[0], []).append(segment)
    for column, segments in sorted(by_column.items()):
        for metric, what in (("MaturedAveragePrecision", "AP"), ("MaturedRecall", "recall")):
            values = [
                PanelMetric(
                    metric=metric,
                    legend=f"{s.partition('=')[2]} {{{{model_version}}}}",
                    metric_labels={"segment": s},
                    tags=[QUALITY],
                )
                for s in segments
            ]
            panels.append(
                panel(
                    line_plot_panel,
                    "Segments",
                    f"{what} per {column} on matured labels",
                    values,
                    f"Each {column} value's {what} per day and model version.",
                    size="half",
                )
            )
    tabs = [
        DashboardTabModel(
            id=_uid("tab", line, title),
            title=title,
            panels=[p.id for tab, p in panels if tab == title],
        )
        for title in DASHBOARD_TABS
    ]
    return DashboardModel(tabs=tabs, panels=[p for _, p in panels])


def save_dashboard(store, line: str, seen: dict[str, set[str]]) -> None:
    """(Re)write the line's dashboard over the features and segments ``seen`` now and those
    it already drew."""
    kept = _kept_labels(store, line)
    labels = [sorted(kept[k] | seen.get(k, set())) for k in kept]
    store.write_dashboard(project_id(line), dashboard_model(line, *labels))
