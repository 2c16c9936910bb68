"""The Evidently UI workspace from a real monitoring run: ``model_monitoring`` on a real
instance fills one project per model line with a drift and a quality snapshot per served day
(equal to the loop's own findings and scikit-learn's AP), a dashboard with its panels, re-runs
add no day twice, a day whose labels matured further is rewritten in place, and the real
``evidently ui`` serves the project, its dashboard and the days over HTTP."""

import datetime as dt

import httpx
import numpy as np
import psutil
import pytest
from dagster import materialize

from assets.model_monitoring import model_monitoring
from evergreen.dashboards.evidently_metrics import segment_rows
from evergreen.dashboards.evidently_ui import EvidentlyUI
from evergreen.dashboards.evidently_workspace import (
    DRIFT,
    QUALITY,
    day_timestamp,
    project_id,
    publish_monitoring,
    snapshot_id,
    workspace_path,
)
from evergreen.loop.monitoring_history import daily_live_ap, drift_history
from evergreen.loop.monitors import read_drift
from evergreen.models.registry import ModelRegistry
from evergreen.ports import port_is_free
from evergreen.resources import EvergreenResource
from evergreen.warehouse import connect
from tests.conftest import day
from tests.sensors.conftest import (  # noqa: F401  (loop_home is a fixture)
    LIVE_DAYS,
    labels_loaded,
    load_live_days,
    log_predictions,
    loop_home,
    register,
    rows_of,
)

LINE = "fraud_detector"


def _monitor(settings, instance) -> dict:
    resources = {"evergreen": EvergreenResource(home=str(settings.home))}
    result = materialize([model_monitoring], instance=instance, resources=resources)
    assert result.success
    [event] = result.asset_materializations_for_node("model_monitoring")
    return {k: getattr(v, "value", v) for k, v in event.metadata.items()}


def _workspace(settings):
    from evidently.ui.workspace import Workspace

    return Workspace(str(workspace_path(settings)))


def _values(snapshot) -> dict[tuple, float]:
    """(metric name, its labels but type) -> value of every result of a snapshot."""
    out = {}
    for result in snapshot.metric_results.values():
        params = dict(result.metric_value_location.metric.params)
        name = params.pop("type").rsplit(":", 1)[-1]
        out[(name, *sorted(params.items()))] = result.value
    return out


def _files(settings) -> dict[str, int]:
    folder = workspace_path(settings) / str(project_id(LINE)) / "snapshots"
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("*.json"))}


def _recall(settings, frame, tag: str) -> float:
    """Recall at the model's threshold, scored by the model itself (not read back)."""
    model = ModelRegistry(settings).load(tag)
    flagged = model.predict_proba(frame) >= model.threshold
    frauds = frame["label"].to_numpy(dtype=int) == 1
    return float((flagged & frauds).sum() / frauds.sum())


def test_monitoring_fills_one_project_per_line_idempotently_and_the_ui_serves_it(
    loop_home,  # noqa: F811  (the fixture imported above)
    instance,
    training_frame,
    quick_models,
):
    settings = loop_home
    a, b = (register(settings, m) for m in quick_models[:2])
    served = {a: LIVE_DAYS[:3], b: LIVE_DAYS[3:]}
    for tag, days in served.items():
        log_predictions(settings, rows_of(training_frame, days), tag)
    load_live_days(settings, instance, LIVE_DAYS)
    labels_loaded(instance)
    # With labels through day 14 only days 10 and 11 have matured (3 days' delay); no drift
    # was judged yet. The monitoring run adds the rest and leaves those two as they are.
    early = publish_monitoring(settings, LIVE_DAYS, day(14))
    assert sorted(early.written) == [f"{LINE} quality {d} {a}" for d in LIVE_DAYS[:2]]

    metadata = _monitor(settings, instance)

    workspace = _workspace(settings)
    [project] = workspace.list_projects()
    assert (project.name, project.id) == (LINE, project_id(LINE))
    runs = {workspace.get_run(project.id, sid).name: sid for sid in workspace.list_runs(project.id)}
    expected = {f"drift {d}": snapshot_id(LINE, DRIFT, d) for d in LIVE_DAYS}
    expected |= {
        f"quality {d} {tag}": snapshot_id(LINE, QUALITY, d, tag)
        for tag, days in served.items()
        for d in days
    }
    assert runs == expected  # one snapshot per day and kind (and model version), derived ids
    assert metadata["evidently_snapshots_written"] == len(expected) - 2
    assert "fraud_detector: 12 day snapshot(s) written, 2 unchanged" in metadata["evidently"]

    # Drift: the finding the loop kept, feature by feature.
    ratios = drift_history(settings, LIVE_DAYS).set_index(["day", "feature"])["ratio"]
    for d in LIVE_DAYS:
        snapshot = workspace.get_run(project.id, expected[f"drift {d}"])
        assert snapshot.timestamp == day_timestamp(d) and snapshot.tags == [DRIFT]
        values, finding = _values(snapshot), read_drift(settings, d)
        assert values[("DriftShare",)] == pytest.approx(finding.severity)
        for feature in finding.features:
            key = ("FeatureDriftRatio", ("column", feature))
            assert values[key] == pytest.approx(ratios[(d, feature)]), (d, feature)
        judged = [k for k, s in finding.segments.items() if s["share_drifted"] is not None]
        assert judged and all(("SegmentDriftShare", ("segment", k)) in values for k in judged)

    # Quality: AP as the monitors compute it, recall as the model scores it, per segment.
    ap = daily_live_ap(settings, day(23)).set_index(["day", "model_tag"])
    for tag, days in served.items():
        for d in days:
            snapshot = workspace.get_run(project.id, expected[f"quality {d} {tag}"])
            assert snapshot.metadata["model_version"] == tag
            values = _values(snapshot)
            overall = (("model_version", tag), ("segment", "all"))
            assert values[("MaturedAveragePrecision", *overall)] == pytest.approx(
                ap.loc[(d, tag), "ap"], abs=1e-12
            )
            assert values[("MaturedTransactions", *overall)] == ap.loc[(d, tag), "rows"]
    frame = rows_of(training_frame, [LIVE_DAYS[4]])
    region = str(frame.groupby("region")["label"].sum().idxmax())
    part = segment_rows(frame, f"region={region}")
    snapshot = workspace.get_run(project.id, expected[f"quality {LIVE_DAYS[4]} {b}"])
    key = ("MaturedRecall", ("model_version", b), ("segment", f"region={region}"))
    assert _values(snapshot)[key] == pytest.approx(_recall(settings, part, b))

    # The dashboard: three tabs; every feature and segment value drawn.
    dashboard = workspace.get_dashboard(project.id)
    assert [t.title for t in dashboard.tabs] == ["Drift", "Quality", "Segments"]
    titles = {p.title: p for p in dashboard.panels}
    assert "Average precision on matured labels" in titles
    assert "Precision and recall at the served threshold" in titles
    per_feature = titles["Drift ratio per feature (score / threshold; above 1: drifted)"]
    features = {v.metric_labels["column"] for v in per_feature.values}
    assert features == set(read_drift(settings, LIVE_DAYS[0]).features)
    assert {"AP per region on matured labels", "recall per card_type on matured labels"} <= set(
        titles
    )
    assert sum(len(t.panels) for t in dashboard.tabs) == len(dashboard.panels)

    # A re-run adds nothing and rewrites nothing.
    files = _files(settings)
    again = _monitor(settings, instance)
    assert again["evidently_snapshots_written"] == 0
    assert _files(settings) == files
    assert workspace.get_dashboard(project.id) == dashboard

    # A label corrected later (re-delivered on day 23, the newest delivery counts): exactly
    # that day's quality snapshot is rewritten, in place, with the corrected figures.
    first = LIVE_DAYS[0]
    fraud = int(rows_of(training_frame, [first]).query("label == 1")["transaction_id"].iloc[0])
    with connect(settings.warehouse_path) as conn:
        conn.execute(
            "INSERT INTO raw_labels SELECT * REPLACE (1 - label AS label, $day AS partition_date) "
            "FROM raw_labels WHERE transaction_id = $tx",
            {"day": day(23), "tx": fraud},
        )
    corrected = publish_monitoring(settings, LIVE_DAYS, day(23))
    assert corrected.written == [f"{LINE} quality {first} {a}"]
    assert len(_files(settings)) == len(expected)
    snapshot = workspace.get_run(project.id, expected[f"quality {first} {a}"])
    overall = (("model_version", a), ("segment", "all"))
    now = daily_live_ap(settings, day(23)).set_index(["day", "model_tag"]).loc[(first, a)]
    assert _values(snapshot)[("MaturedFrauds", *overall)] == now["frauds"]
    assert now["frauds"] == ap.loc[(first, a), "frauds"] - 1
    assert _values(snapshot)[("MaturedAveragePrecision", *overall)] == pytest.approx(now["ap"])

    _assert_the_ui_serves(settings, project.id, LIVE_DAYS)


def _assert_the_ui_serves(settings, project, days: list[dt.date]) -> None:
    """The real ``evidently ui`` on a free port: the project, its dashboard, the drift share
    per day as the dashboard's panel asks for it; stopped at the end with its port free."""
    ui = EvidentlyUI(settings).start(timeout_s=90)
    try:
        with httpx.Client(base_url=ui.url, timeout=10) as client:
            projects = client.get("/api/projects").json()
            assert [(p["name"], p["id"]) for p in projects] == [(LINE, str(project))]
            dashboard = client.get(f"/api/v2/dashboards/{project}").json()
            assert [t["title"] for t in dashboard["tabs"]] == ["Drift", "Quality", "Segments"]
            panel = next(p for p in dashboard["panels"] if p["title"].startswith("Share of"))
            wanted = ("tags", "metadata", "metric", "metric_labels")
            query = {"series_filter": [{k: panel["values"][0][k] for k in wanted}]}
            answer = client.post(f"/api/v2/snapshots/{project}/data_series_batch", json=query)
            assert answer.status_code in (200, 201), answer.text
            series = answer.json()
        stamps = [dt.datetime.fromisoformat(s["timestamp"]).date() for s in series["sources"]]
        assert stamps == days
        [share] = series["series"]
        severities = [read_drift(settings, d).severity for d in days]
        assert np.allclose(share["values"], severities)
    finally:
        pid = ui.process.pid
        ui.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert port_is_free(ui.port)
