"""How the loop's recovery is judged: recovery days against the oracle, mean daily AP over a
stretch, the loop's events from the retrain record, and the plot of it all."""

import datetime as dt

import pandas as pd
import pytest

from evergreen.loop.recovery import (
    COLUMNS,
    loop_events,
    mean_ap,
    plot_recovery,
    recovery_days,
)
from evergreen.loop.retrain_policy import RetrainGovernor, Trigger
from tests.conftest import make_settings
from tests.sensors.conftest import loop_home  # noqa: F401  (a fixture)

DRIFT = dt.date(2018, 5, 10)


def frame(served, oracle, first=DRIFT - dt.timedelta(days=2)) -> pd.DataFrame:
    """A daily recovery frame from ``first``, one row per pair of APs."""
    rows = [
        {
            "day": first + dt.timedelta(days=i),
            "rows": 1000,
            "frauds": 10,
            "served_ap": s,
            "frozen_ap": 0.3,
            "oracle_ap": o,
            "served_by": "",
        }
        for i, (s, o) in enumerate(zip(served, oracle, strict=True))
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def test_recovery_counts_from_the_drift_to_the_day_served_stays_near_the_oracle():
    # Days D-2 .. D+5; served reaches 90 % of the oracle on D+3 and stays.
    served = [0.7, 0.7, 0.3, 0.3, 0.4, 0.65, 0.7, 0.72]
    oracle = [0.7, 0.7, 0.4, 0.5, 0.6, 0.7, 0.75, 0.78]
    assert recovery_days(frame(served, oracle), DRIFT) == 3
    # The days before the drift never count, however good.
    assert recovery_days(frame([0.1, 0.1, *served[2:]], oracle), DRIFT) == 3


def test_a_relapse_moves_the_recovery_and_never_recovering_is_none():
    served = [0.7, 0.7, 0.3, 0.7, 0.7, 0.4, 0.7, 0.72]
    oracle = [0.7, 0.7, 0.4, 0.7, 0.7, 0.7, 0.75, 0.78]
    assert recovery_days(frame(served, oracle), DRIFT) == 4  # dipped on D+3, ok from D+4
    last_bad = [*served[:-1], 0.1]
    assert recovery_days(frame(last_bad, oracle), DRIFT) is None
    no_oracle = frame(served, [None] * len(served))
    assert recovery_days(no_oracle, DRIFT) is None
    assert recovery_days(frame(served, oracle), DRIFT, level=0.5) == 0  # a laxer level


def test_days_without_a_judgement_are_skipped():
    served = [0.7, 0.7, 0.3, None, 0.68, 0.7]
    oracle = [0.7, 0.7, 0.6, 0.7, 0.7, 0.7]
    assert recovery_days(frame(served, oracle), DRIFT) == 2


def test_mean_ap_is_the_mean_of_the_daily_values_in_the_stretch():
    daily = frame([0.2, 0.4, None, 0.8], [0.5, 0.5, 0.5, 0.5])
    first = DRIFT - dt.timedelta(days=2)
    assert mean_ap(daily, "served_ap", first, DRIFT + dt.timedelta(days=1)) == pytest.approx(
        (0.2 + 0.4 + 0.8) / 3
    )
    assert mean_ap(daily, "served_ap", first, first) == pytest.approx(0.2)
    assert mean_ap(daily, "served_ap", DRIFT, DRIFT) is None  # the one day without a value


def test_the_loops_events_come_from_the_retrain_record(tmp_path):
    settings = make_settings(tmp_path / "home")
    governor = RetrainGovernor(settings)
    at = dt.datetime.combine(DRIFT, dt.time(), tzinfo=dt.UTC)
    governor.consider(Trigger("drift", at, severity=0.5))  # alarm, retrain, two follow-ups
    governor.consider(Trigger("drift", at + dt.timedelta(days=3), severity=0.6))  # hysteresis
    events = loop_events(settings)
    kinds = [(e.day, e.kind) for e in events]
    assert kinds.count((DRIFT, "alarm")) == 1  # the suppressed repeat is the same alarm
    assert (DRIFT, "retrain") in kinds
    assert kinds.count((DRIFT, "follow-up scheduled")) == 2
    delay = settings.label_delay_days
    scheduled = [e.text for e in events if e.kind == "follow-up scheduled"]
    assert scheduled[0] == (DRIFT + dt.timedelta(days=delay + 1)).isoformat()
    assert not any(e.day > DRIFT for e in events)


def test_the_recovery_plot_is_a_png_with_or_without_days(tmp_path):
    settings = make_settings(tmp_path / "home")
    governor = RetrainGovernor(settings)
    governor.consider(Trigger("drift", dt.datetime(2018, 5, 10, tzinfo=dt.UTC), severity=0.5))
    daily = frame([0.7, 0.7, 0.3, 0.5, 0.7], [0.7, 0.7, 0.5, 0.6, 0.7])
    png = plot_recovery(daily, loop_events(settings), DRIFT, tmp_path / "recovery.png")
    empty = plot_recovery(pd.DataFrame(columns=COLUMNS), [], None, tmp_path / "empty.png")
    for path in (png, empty):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > empty.stat().st_size  # lines and marks drawn


def test_the_oracle_trains_on_every_label_known_the_day_before(pipeline_home):
    """The oracle of day t: the whole training window of cut-off t - 1, request-time features
    included (computed from the warehouse), newest labelled day trained on, none held out."""
    from evergreen.features.realtime import REALTIME_FEATURES
    from evergreen.loop.recovery import oracle_model
    from tests.model_fixtures import CUTOFF, asset_settings

    settings = asset_settings(pipeline_home)
    cutoff = CUTOFF - dt.timedelta(days=1)  # a cut-off no other test writes a training set of
    assert not settings.training_set_path(cutoff).exists()
    model = oracle_model(settings, cutoff)
    newest = cutoff - dt.timedelta(days=settings.label_delay_days)
    assert model.days["train"].endswith(newest.isoformat())
    assert model.days["validation"].endswith(newest.isoformat())  # customers, not days
    assert set(REALTIME_FEATURES) <= set(model.feature_names)
    assert model.validation_metrics["roc_auc"] > 0.7


def test_a_follow_up_counts_as_served_only_when_its_model_served(
    loop_home,  # noqa: F811  (the fixture imported above)
    instance,
    training_frame,
    quick_models,
):
    """The e2e test and the benchmark judge the days after a follow-up whose model served: one
    whose candidate the gate kept out, or that answered only warm-ups and probes, is not one."""
    from evergreen.loop.recovery import served_follow_ups
    from tests.conftest import day
    from tests.sensors.conftest import LIVE_DAYS, load_live_days, log_predictions, register, rows_of

    served_day, kept_out_day = day(19), day(21)
    served = register(loop_home, quick_models[0], cutoff=served_day)
    # Trained, and its canary answered only warm-ups and probes (no label ever lands on them).
    probed = register(loop_home, quick_models[1], cutoff=kept_out_day)
    log_predictions(loop_home, rows_of(training_frame, LIVE_DAYS[:1]), served)
    probes = rows_of(training_frame, LIVE_DAYS[:1]).head(20)
    unlabelled = probes.assign(transaction_id=probes["transaction_id"] + 10**15)
    log_predictions(loop_home, unlabelled, probed)
    load_live_days(loop_home, instance, LIVE_DAYS[:1])
    governor = RetrainGovernor(loop_home)
    for when in (served_day, kept_out_day):
        at = dt.datetime.combine(when, dt.time(), tzinfo=dt.UTC)
        assert governor.consider(Trigger("follow_up", at)).accepted
    assert served_follow_ups(loop_home) == [(served_day, served)]


def test_a_follow_up_counts_as_judged_once_the_gate_gave_its_candidate_a_status(
    loop_home,  # noqa: F811  (the fixture imported above)
    quick_models,
):
    """The e2e test and the benchmark judge the days after the first follow-up the gate
    judged, whichever model then serves; one still a candidate (not judged yet) is not one."""
    from evergreen.loop.recovery import judged_follow_ups
    from tests.conftest import day
    from tests.sensors.conftest import register

    pending_day, kept_day = day(19), day(21)
    register(loop_home, quick_models[0], cutoff=pending_day)  # trained, not judged yet
    kept = register(loop_home, quick_models[1], cutoff=kept_day, status="challenger")
    governor = RetrainGovernor(loop_home)
    for when in (pending_day, kept_day):
        at = dt.datetime.combine(when, dt.time(), tzinfo=dt.UTC)
        assert governor.consider(Trigger("follow_up", at)).accepted
    assert judged_follow_ups(loop_home) == [(kept_day, kept)]
