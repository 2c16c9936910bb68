"""model_monitoring on a real instance: live AP per model and day equal to scikit-learn's on the
logged rows, drift per feature that shows an inflated-amount day and not a stationary one, the
drift sensor's findings reused (Evidently runs once per day), and its automation condition over
every partition of its daily upstreams."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    Definitions,
    evaluate_automation_conditions,
    materialize,
)
from sklearn.metrics import average_precision_score

from assets.model_monitoring import model_monitoring
from assets.raw_data import raw_labels, raw_transactions
from assets.serving import live_predictions
from evergreen.loop.monitoring_history import daily_live_ap, drift_history
from evergreen.loop.monitors import finding_path
from evergreen.loop.retrain_policy import RetrainGovernor
from evergreen.models.registry import ModelRegistry
from evergreen.resources import EvergreenResource
from sensors.drift_sensor import drift_sensor
from tests.conftest import day, make_settings
from tests.model_fixtures import CUTOFF, asset_settings
from tests.sensors.conftest import (  # noqa: F401  (loop_home is a fixture)
    LIVE_DAYS,
    labels_loaded,
    load_live_days,
    log_predictions,
    loop_definitions,
    loop_home,
    register,
    rows_of,
    stationary_day,
    tick,
)
from tests.sensors.test_drift_sensor import inflate_amounts

PNG_HEADER = b"\x89PNG\r\n\x1a\n"
CALM, INFLATED = day(17), day(18)


def _materialize(settings, instance):
    resources = {"evergreen": EvergreenResource(home=str(settings.home))}
    result = materialize([model_monitoring], instance=instance, resources=resources)
    assert result.success
    [event] = result.asset_materializations_for_node("model_monitoring")
    return {k: getattr(v, "value", v) for k, v in event.metadata.items()}


def _serve(settings, training_frame, quick_models) -> dict[str, pd.DataFrame]:
    """Three models serve in turn: A days 10..12, B 13..16 (the held-out days, real labels),
    C a stationary day 17 and a day 18 of inflated amounts (disjoint training rows, so no
    transaction is scored twice by C). Returns each model's logged frames."""
    a, b, c = (register(settings, m, cutoff=CUTOFF) for m in quick_models)
    served = {
        a: [rows_of(training_frame, LIVE_DAYS[:3])],
        b: [rows_of(training_frame, LIVE_DAYS[3:])],
    }
    halves = np.random.default_rng(0).permutation(len(training_frame)) % 2
    calm = stationary_day(training_frame[halves == 0], CALM, 3000, seed=1)
    inflated = inflate_amounts(stationary_day(training_frame[halves == 1], INFLATED, 3000, seed=2))
    served[c] = [calm, inflated]
    for tag, frames in served.items():
        for frame in frames:
            log_predictions(settings, frame, tag)
    return {tag: pd.concat(frames) for tag, frames in served.items()}


def _expected_window_ap(settings, frame: pd.DataFrame, tag: str, last) -> float:
    """scikit-learn's AP on the model's logged rows of the window ending ``last``."""
    model = ModelRegistry(settings).load(tag)
    days = frame["tx_datetime"].dt.tz_convert("UTC").dt.date
    first = last - pd.Timedelta(days=settings.performance_window_days - 1)
    part = frame[(days >= first) & (days <= last)]
    return float(average_precision_score(part["label"], model.predict_proba(part)))


def _assert_png(path) -> None:
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_HEADER
    assert path.stat().st_size > 10_000
    with Image.open(path) as image:
        assert min(image.size) >= 300


def test_monitoring_plots_live_ap_and_drift_and_reuses_the_sensors_findings(
    loop_home,  # noqa: F811  (the fixture imported above)
    instance,
    training_frame,
    quick_models,
):
    settings = loop_home
    logged = _serve(settings, training_frame, quick_models)
    load_live_days(settings, instance, [*LIVE_DAYS, CALM, INFLATED])
    labels_loaded(instance)
    # The sensor already judged the held-out days' drift earlier; now it judges 17 and 18.
    seen = json.dumps([d.isoformat() for d in LIVE_DAYS])
    tick(drift_sensor, settings, instance, seen, loop_definitions(settings))
    kept = {d: finding_path(settings, "drift", d) for d in (CALM, INFLATED)}
    stamps = {d: (p.stat().st_mtime_ns, p.read_text()) for d, p in kept.items()}

    metadata = _materialize(settings, instance)

    assert {d: (p.stat().st_mtime_ns, p.read_text()) for d, p in kept.items()} == stamps
    for name in ("live_ap_png", "drift_png", "recovery_png"):
        _assert_png(Path(metadata[name]))
    assert metadata["live_ap_plot"].startswith("![live AP per model](data:image/png;base64,")
    # Served vs frozen vs oracle, with the drift the loop confirmed (a follow-up scheduled).
    assert metadata["recovery_plot"].startswith("![served vs frozen vs oracle](data:image/png")
    scheduled = [h for h in RetrainGovernor(settings).history() if h["outcome"] == "scheduled"]
    if scheduled:
        first = scheduled[-1]["evidence"]["drift_first_day"]
        assert metadata["recovery"].startswith(f"Drift confirmed from {first}"), metadata
        assert "no oracle scores kept" in metadata["recovery"]
    else:
        assert metadata["recovery"] == "No drift confirmed over the served days."
    assert metadata["days_served"] == 9 and metadata["days_with_matured_labels"] == 9
    table = metadata["models"]
    frame = daily_live_ap(settings, day(23))
    for tag, rows in logged.items():
        last = frame[frame["model_tag"] == tag]["day"].max()
        expected = _expected_window_ap(settings, rows, tag, last)
        [line] = [line for line in table.splitlines() if f"`{tag}`" in line]
        assert f"| {expected:.3f} |" in line, (line, expected)
        mine = frame[(frame["model_tag"] == tag) & (frame["day"] == last)].iloc[0]
        assert mine["window_ap"] == pytest.approx(expected, abs=1e-12)
        reference = ModelRegistry(settings).get(tag).metrics["validation"]["average_precision"]
        assert f"| {reference:.3f} | validation days (ledger) |" in line
    # Points with too few frauds are kept, flagged as not judged (the plot draws them hollow).
    strict = daily_live_ap(settings.model_copy(update={"monitor_min_frauds": 50}), day(23))
    assert strict[["day", "model_tag", "ap"]].equals(frame[["day", "model_tag", "ap"]])
    assert (strict["judged"] == (strict["frauds"] >= 50)).all() and not strict["judged"].all()
    assert (strict["window_judged"] == (strict["window_frauds"] >= 50)).all()

    drift = drift_history(settings, [CALM, INFLATED]).set_index(["day", "feature"])["ratio"]
    # The 30-day window is still filling in this 24-day world's reference: not judged.
    assert "customer_std_amount_30d" not in drift[INFLATED]
    for name in ["amount", "customer_avg_amount_1d", "customer_avg_amount_7d"]:
        assert drift[(INFLATED, name)] > 1 > drift[(CALM, name)], name
    assert metadata["most_drifted_features"].startswith(f"**{INFLATED}**")
    # Every day is kept whole now: a second run judges nothing again.
    every = [finding_path(settings, "drift", d) for d in [*LIVE_DAYS, CALM, INFLATED]]
    assert all(json.loads(p.read_text())["features"] for p in every)
    before = [p.stat().st_mtime_ns for p in every]
    _materialize(settings, instance)
    assert [p.stat().st_mtime_ns for p in every] == before
    # A day whose log changed since it was judged is judged again.
    log_predictions(settings, stationary_day(training_frame, CALM, 200, seed=9), next(iter(logged)))
    load_live_days(settings, instance, [CALM])
    drift_history(settings, [*LIVE_DAYS, CALM, INFLATED])
    changed = [p for p, t in zip(every, before, strict=True) if p.stat().st_mtime_ns != t]
    assert changed == [finding_path(settings, "drift", CALM)]
    assert json.loads(changed[0].read_text())["logged_rows"] == 3200


def test_nothing_served_yet_is_said_not_raised(tmp_path, instance):
    settings = asset_settings(make_settings(tmp_path / "home"))

    metadata = _materialize(settings, instance)

    assert metadata["status"] == "nothing served yet"
    assert "Nothing served yet" in metadata["summary"]


def _requested(defs, instance, cursor):
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    return result.get_requested_partitions(AssetKey("model_monitoring")), result.cursor


def test_automation_refreshes_after_a_days_loads_once_whatever_days_are_missing(home, instance):
    defs = Definitions(
        assets=[raw_transactions, raw_labels, live_predictions, model_monitoring],
        resources={"evergreen": EvergreenResource(home=str(home.home))},
    )

    def land(asset_key: str, i: int) -> None:
        event = AssetMaterialization(asset_key=asset_key, partition=day(i).isoformat())
        instance.report_runless_asset_event(event)

    requested, cursor = _requested(defs, instance, None)
    assert requested == set()
    land("raw_labels", 5)  # most partitions of both upstreams are missing: no matter
    requested, cursor = _requested(defs, instance, cursor)
    assert requested == {None}
    instance.report_runless_asset_event(AssetMaterialization(asset_key="model_monitoring"))
    requested, cursor = _requested(defs, instance, cursor)
    assert requested == set()

    # A day lands: live_predictions of that day is requested; monitoring waits for it ...
    land("raw_transactions", 6)
    land("raw_labels", 6)
    result = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert result.get_requested_partitions(AssetKey("live_predictions")) == {day(6).isoformat()}
    assert result.get_requested_partitions(AssetKey("model_monitoring")) == set()
    # ... and runs once it has loaded.
    land("live_predictions", 6)
    requested, cursor = _requested(defs, instance, result.cursor)
    assert requested == {None}
