"""The drift sensor on a real instance: stationary days ask nothing; a week of inflated amounts
asks for a retrain with its evidence, once (hysteresis holds the next drifted day back)."""

import json

import pandas as pd

from evergreen.loop.retrain_policy import RetrainGovernor, RetrainPolicy
from sensors.drift_sensor import drift_sensor
from tests.conftest import day
from tests.sensors.conftest import (
    CUTOFF,
    labels_loaded,
    load_live_days,
    log_predictions,
    loop_definitions,
    register,
    stationary_day,
    tick,
)

AMOUNT_FEATURES = ["customer_avg_amount_1d", "customer_avg_amount_7d", "customer_std_amount_30d"]


def inflate_amounts(frame: pd.DataFrame, factor: float = 3.0, days: int = 8) -> pd.DataFrame:
    """Covariate drift: amounts have been ``factor`` times larger for ``days`` days, so every
    amount-valued feature moves with them (the 30-day average by the inflated share of its
    window) and the ratios to the average are recomputed."""
    out = frame.copy()
    out["amount"] = out["amount"] * factor
    for name in AMOUNT_FEATURES:
        out[name] = out[name] * factor
    out["customer_avg_amount_30d"] *= 1 + (factor - 1) * days / 30
    out["amount_to_avg_7d"] = out["amount"] / out["customer_avg_amount_7d"]
    out["amount_to_avg_30d"] = out["amount"] / out["customer_avg_amount_30d"]
    out["amount_zscore_30d"] = (out["amount"] - out["customer_avg_amount_30d"]) / out[
        "customer_std_amount_30d"
    ]
    # The request-time card windows: those inside the inflated days move by ``factor``, the
    # 30-day one by the inflated share of its window.
    for window in ("1h", "24h", "7d", "30d"):
        moved = factor if window != "30d" else 1 + (factor - 1) * days / 30
        for name in (f"card_amount_sum_{window}", f"card_amount_mean_{window}"):
            out[name] = out[name] * moved
        out[f"card_amount_to_mean_{window}"] = out["amount"] / out[f"card_amount_mean_{window}"]
        if f"card_amount_max_{window}" in out:  # the card's largest earlier amount
            out[f"card_amount_max_{window}"] *= moved
            out[f"card_amount_to_max_{window}"] = out["amount"] / out[f"card_amount_max_{window}"]
    if "card_amount_std_30d" in out:  # the 30-day spread scales as its window's amounts
        out["card_amount_std_30d"] *= 1 + (factor - 1) * days / 30
        out["card_amount_zscore_30d"] = (out["amount"] - out["card_amount_mean_30d"]) / out[
            "card_amount_std_30d"
        ]
    return out


def test_stationary_days_ask_nothing_and_drift_asks_once(
    loop_home, instance, training_frame, quick_models
):
    settings = loop_home
    tag = register(settings, quick_models[0], status="champion")
    labels_loaded(instance)
    defs = loop_definitions(settings)
    calm_day, drifted = day(17), [day(18), day(19)]
    log_predictions(settings, stationary_day(training_frame, calm_day, 3000, seed=1), tag)
    load_live_days(settings, instance, [calm_day])

    calm = tick(drift_sensor, settings, instance, definitions=defs)

    assert calm.run_requests == []
    assert RetrainGovernor(settings).history() == []  # below the enter level: no record
    finding = json.loads((settings.reports_dir / "monitoring/drift/2018-04-18.json").read_text())
    assert finding["model_tag"] == tag and finding["rows"] == 3000
    assert finding["share_drifted"] < RetrainPolicy().drift_exit, finding

    for i, d in enumerate(drifted):
        moved = stationary_day(training_frame, d, 3000, seed=2 + i)
        log_predictions(settings, inflate_amounts(moved), tag)
    load_live_days(settings, instance, drifted)
    result = tick(drift_sensor, settings, instance, cursor=calm.cursor, definitions=defs)

    [request] = result.run_requests
    assert request.job_name == "retrain"
    assert request.partition_key == CUTOFF.isoformat()  # the newest labels day, not today
    assert request.tags["evergreen/trigger"] == "drift"
    history = RetrainGovernor(settings).history()
    assert [(h["data_time"][:10], h["outcome"]) for h in history] == [
        (drifted[0].isoformat(), "accepted"),
        # Follow-ups for when the labels of the drift's first days have matured.
        (drifted[0].isoformat(), "scheduled"),
        (drifted[0].isoformat(), "scheduled"),
        (drifted[1].isoformat(), "suppressed"),  # still drifted: hysteresis, recorded
    ]
    assert all("have matured by" in h["reason"] for h in history[1:3])
    evidence = history[0]["evidence"]
    assert {"amount", "customer_avg_amount_7d", "card_amount_mean_1h"} <= set(evidence["drifted"])
    # This 24-day world's reference holds no day with a full 30-day window: those are not judged.
    judged = json.loads((settings.reports_dir / "monitoring/drift/2018-04-19.json").read_text())
    assert "amount_to_avg_30d" not in judged["features"]
    assert "windows still filling" in judged["reason"]
    assert evidence["share_drifted"] >= RetrainPolicy().drift_enter
    assert evidence["top_features"][0]["drifted"] and evidence["most_drifted_segments"]
    assert "hysteresis" in history[3]["reason"]
    # Nothing new: the cursor holds and no day is judged twice.
    again = tick(drift_sensor, settings, instance, cursor=result.cursor, definitions=defs)
    assert again.run_requests == [] and len(RetrainGovernor(settings).history()) == 4
