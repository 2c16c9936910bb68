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
        ("schedule", "suppressed"),
    ]
    assert rows[0]["evidence"] == {"drifted": ["amount"]}
    assert "cooldown" in rows[1]["reason"]
