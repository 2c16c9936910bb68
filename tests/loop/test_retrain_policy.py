"""The retrain policy's bounds: hysteresis, cooldown, daily budget, and the record it keeps."""

import datetime as dt

import pytest

from evergreen.loop.retrain_policy import RetrainGovernor, RetrainPolicy, Trigger
from tests.conftest import make_settings

T0 = dt.datetime(2018, 5, 1, tzinfo=dt.UTC)


def at(days: float) -> dt.datetime:
    return T0 + dt.timedelta(days=days)


@pytest.fixture
def governor(tmp_path) -> RetrainGovernor:
    policy = RetrainPolicy(cooldown=dt.timedelta(days=2), max_per_day=1)
    return RetrainGovernor(make_settings(tmp_path / "home"), policy)


def test_drift_retrains_once_then_waits_for_the_signal_to_fall_below_its_exit_level(governor):
    assert governor.consider(Trigger("drift", at(0), severity=0.5)).accepted
    # Still drifted days later, past the cooldown: hysteresis holds it back.
    held = governor.consider(Trigger("drift", at(5), severity=0.4))
    assert not held.accepted and "hysteresis" in held.reason
    # Between exit and enter: neither fires nor re-arms.
    assert governor.consider(Trigger("drift", at(6), severity=0.2)).outcome == "below_threshold"
    assert governor.consider(Trigger("drift", at(7), severity=0.1)).outcome == "rearmed"
    assert governor.consider(Trigger("drift", at(8), severity=0.35)).accepted


def test_below_the_enter_level_nothing_is_asked_or_recorded(governor):
    decision = governor.consider(Trigger("performance", at(0), severity=0.05))
    assert not decision.accepted
    assert governor.history() == []


def test_cooldown_suppresses_any_trigger_and_says_until_when(governor):
    assert governor.consider(Trigger("schedule", at(0))).accepted
    suppressed = governor.consider(Trigger("performance", at(1), severity=0.9))
    assert not suppressed.accepted and "cooldown" in suppressed.reason
    # The signal held back by the cooldown is still armed once the cooldown is over.
    assert governor.consider(Trigger("performance", at(2.5), severity=0.9)).accepted


def test_daily_budget_caps_retrains(tmp_path):
    policy = RetrainPolicy(cooldown=dt.timedelta(0), max_per_day=2)
    governor = RetrainGovernor(make_settings(tmp_path / "home"), policy)
    outcomes = [governor.consider(Trigger("manual", at(h / 24))).accepted for h in range(4)]
    assert outcomes == [True, True, False, False]
    assert governor.consider(Trigger("manual", at(1))).accepted  # a new day, a new budget
    reasons = [r["reason"] for r in governor.history() if r["outcome"] == "suppressed"]
    assert reasons and all("max 2 a day" in r for r in reasons)


def test_every_decision_is_kept_with_its_evidence_across_governors(governor):
    governor.consider(Trigger("drift", at(0), severity=0.5, evidence={"drifted": ["amount"]}))
    governor.consider(Trigger("schedule", at(1)))
    reopened = RetrainGovernor(governor.settings, governor.policy)
    rows = reopened.history()
    assert [(r["kind"], r["outcome"]) for r in rows] == [
        ("drift", "accepted"),
        ("follow_up", "scheduled"),
        ("follow_up", "scheduled"),
        ("schedule", "suppressed"),
    ]
    assert rows[0]["evidence"] == {"drifted": ["amount"]}
    assert "cooldown" in rows[3]["reason"]


def test_an_alarm_schedules_a_follow_up_for_when_the_drifts_labels_matured(governor):
    delay = governor.settings.label_delay_days
    decision = governor.consider(Trigger("drift", at(0), severity=0.5))
    assert decision.accepted and decision.follow_up is not None
    follow_up = decision.follow_up
    assert follow_up.drift_first_day == T0.date()
    assert follow_up.due == T0.date() + dt.timedelta(days=delay + 1)  # two labelled drift days
    # The drift stays on: hysteresis holds the drift signal back, and schedules nothing more.
    assert not governor.consider(Trigger("drift", at(3), severity=0.6)).accepted
    assert governor.due_follow_ups(follow_up.due - dt.timedelta(days=1)) == []
    assert governor.due_follow_ups(follow_up.due) == [follow_up]
    fired = governor.consider(Trigger("follow_up", at(delay + 1), evidence=follow_up.evidence()))
    assert fired.accepted
    assert governor.due_follow_ups(follow_up.due + dt.timedelta(days=1)) == []  # done once
    # The second follow-up waits for four labelled drift days.
    [second] = governor.due_follow_ups(follow_up.due + dt.timedelta(days=2))
    assert second.due == follow_up.due + dt.timedelta(days=2)
    rows = [(r["kind"], r["outcome"]) for r in governor.history()]
    assert rows == [
        ("drift", "accepted"),
        ("follow_up", "scheduled"),
        ("follow_up", "scheduled"),
        ("drift", "suppressed"),
        ("follow_up", "accepted"),
    ]
    scheduled = governor.history()[1]
    assert "labels of the drift's first 2 day(s)" in scheduled["reason"]


def test_a_follow_up_held_back_by_the_bounds_asks_again_then_lapses(tmp_path):
    policy = RetrainPolicy(
        cooldown=dt.timedelta(days=1), max_per_day=1, follow_up_lapse_days=2, follow_up_days=(2,)
    )
    governor = RetrainGovernor(make_settings(tmp_path / "home"), policy)
    # Held back by the cooldown, the alarm still schedules its follow-up.
    assert governor.consider(Trigger("schedule", at(0))).accepted
    alarm = governor.consider(Trigger("performance", at(0.5), severity=0.5))
    assert not alarm.accepted and alarm.follow_up is not None
    due = alarm.follow_up.due
    day = dt.datetime.combine(due, dt.time(), tzinfo=dt.UTC)
    assert governor.consider(Trigger("manual", day)).accepted  # the budget of that day is spent
    held = governor.consider(Trigger("follow_up", day, evidence=alarm.follow_up.evidence()))
    assert not held.accepted and "cooldown" in held.reason
    assert governor.due_follow_ups(due + dt.timedelta(days=2)) == [alarm.follow_up]  # still due
    assert governor.due_follow_ups(due + dt.timedelta(days=3)) == []  # lapsed
    assert governor.history()[-1]["outcome"] == "lapsed"
    assert governor.history()[-1]["evidence"]["schedule_id"] == alarm.follow_up.schedule_id


def test_a_confirmed_drift_adapts_training_until_it_leaves_the_window(governor):
    from evergreen.loop.retrain_policy import training_adaptation

    settings = governor.settings
    plain = training_adaptation(settings, T0.date())
    assert not plain.adapted and plain.evaluation_days == settings.evaluation_days
    governor.consider(Trigger("drift", at(0), severity=0.5))
    adapted = training_adaptation(settings, T0.date() + dt.timedelta(days=8))
    assert adapted.adapted and adapted.recent_from == T0.date()
    assert adapted.evaluation_days == settings.drift_evaluation_days
    assert adapted.validation_days == 0 and "drift confirmed from" in adapted.reason
    beyond = settings.label_delay_days + settings.training_window_days
    assert not training_adaptation(settings, T0.date() + dt.timedelta(days=beyond)).adapted


def test_a_decay_on_matured_labels_retrains_while_the_drift_signal_is_held_back(governor):
    # The drift fired and stays on: its hysteresis holds every later drift trigger back.
    assert governor.consider(Trigger("drift", at(0), severity=0.5)).accepted
    assert "hysteresis" in governor.consider(Trigger("drift", at(4), severity=0.5)).reason
    # The matured labels show the decay: that signal has hysteresis of its own, and is armed.
    decay = governor.consider(Trigger("performance", at(4), severity=0.4))
    assert decay.accepted, decay.reason
    assert "hysteresis" in governor.consider(Trigger("drift", at(7), severity=0.5)).reason
