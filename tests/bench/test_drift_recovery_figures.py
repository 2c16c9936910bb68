"""The drift-recovery benchmark's figures across seeds: the keys the issue names, bounds taken
from the worst seed, the spread kept, and the concept scenario's goals judged on them."""

import pytest

from bench.drift_recovery import combine, goals


def seed_figures(**overrides) -> dict:
    """One scenario's figures from one seed, as ``run_one`` returns them (the combined part)."""
    figures = {
        "label_delay_days": 7,
        "customers": 5000,
        "drift_day": "2018-06-05",
        "pre_drift_ap_frozen": 0.7,
        "drift_ap_served": 0.55,
        "drift_ap_frozen": 0.35,
        "frozen_drift_over_pre_drift_ap": 0.5,
        "served_over_frozen_ap_ratio": 1.57,
        "recovery_days": 9,
        "retrains_accepted": 4,
        "max_accepted_retrains_per_day": 1,
        "failed_requests": 0,
        "after_follow_up_served_minus_frozen_ap": 0.2,
        "adaptation_adapted_over_standard_ap_ratio": 1.8,
        "first_follow_up_day": "2018-06-13",
        "triggers": {"drift accepted": 1},
        "recovery_plot": "/tmp/recovery.png",
        "daily": [],
    }
    return figures | overrides


def test_the_keys_the_issue_names_are_there_for_each_scenario():
    runs = {s: [seed_figures()] for s in ("concept", "covariate", "gradual")}
    figures = combine(runs, {"stationary_false_alarms": 0})
    for scenario in runs:
        for key in (
            "served_over_frozen_ap_ratio",
            "recovery_days",
            "failed_requests",
            "max_accepted_retrains_per_day",
        ):
            assert f"{scenario}_{key}" in figures
    assert figures["label_delay_days"] == 7 and figures["stationary_false_alarms"] == 0
    assert "concept_daily" not in figures and "concept_first_follow_up_day" not in figures


def test_bounds_come_from_the_worst_seed_and_the_spread_is_kept():
    runs = {
        "concept": [
            seed_figures(served_over_frozen_ap_ratio=1.6, recovery_days=8),
            seed_figures(
                served_over_frozen_ap_ratio=1.3,
                recovery_days=11,
                failed_requests=2,
                max_accepted_retrains_per_day=2,
                after_follow_up_served_minus_frozen_ap=0.12,
            ),
            seed_figures(served_over_frozen_ap_ratio=1.5, recovery_days=9),
        ]
    }
    figures = combine(runs, {})
    assert figures["concept_served_over_frozen_ap_ratio"] == 1.5  # the median
    assert figures["concept_served_over_frozen_ap_ratio_min"] == 1.3
    assert figures["concept_served_over_frozen_ap_ratio_per_seed"] == [1.6, 1.3, 1.5]
    assert figures["concept_recovery_days"] == 11
    assert figures["concept_failed_requests"] == 2
    assert figures["concept_max_accepted_retrains_per_day"] == 2
    assert figures["concept_after_follow_up_served_minus_frozen_ap_min"] == 0.12
    never = combine({"concept": [seed_figures(), seed_figures(recovery_days=None)]}, {})
    assert never["concept_recovery_days"] is None  # one seed never recovered
    assert never["concept_recovery_days_per_seed"] == [9, None]


@pytest.mark.parametrize(
    ("overrides", "missed"),
    [
        ({}, set()),
        ({"served_over_frozen_ap_ratio": 1.2}, {"goal_concept_served_over_frozen_ap_ratio"}),
        ({"recovery_days": 11}, {"goal_concept_recovery_days"}),  # label delay 7 + 3 = 10
        ({"recovery_days": None}, {"goal_concept_recovery_days"}),
        ({"frozen_drift_over_pre_drift_ap": 0.8}, {"goal_concept_frozen_drop"}),
        ({"failed_requests": 1}, {"goal_concept_failed_requests"}),
        ({"max_accepted_retrains_per_day": 2}, {"goal_concept_max_accepted_retrains_per_day"}),
    ],
)
def test_the_concept_goals_are_judged_on_the_figures(overrides, missed):
    figures = combine({"concept": [seed_figures(**overrides)]}, {"stationary_false_alarms": 0})
    judged = goals(figures)
    assert {k for k, ok in judged.items() if not ok} == missed
    alarms = goals(combine({"concept": [seed_figures()]}, {"stationary_false_alarms": 1}))
    assert alarms["goal_stationary_false_alarms"] is False
