"""Concept drift adds a new fraud pattern (as many frauds as the handbook's); covariate drift
shifts amounts and channels; a gradual drift ramps both; the named scenarios switch them on."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from evergreen.simulator import DriftScenario, SimulatorConfig, build_population, generate_day
from evergreen.simulator.drift import CONCEPT_FRAUD_RATIO
from evergreen.simulator.population import SOUTH_EAST

START = dt.date(2018, 4, 1)
DRIFT_DAY = 5
BASE = {"customers": 2000, "terminals": 4000, "days": 10}
KEY = ["tx_datetime", "customer_id", "terminal_id"]


def drifted(**drift: dt.date) -> tuple[SimulatorConfig, SimulatorConfig]:
    return SimulatorConfig(**BASE), SimulatorConfig(**BASE, **drift)


@pytest.fixture(scope="module")
def population():
    return build_population(SimulatorConfig(**BASE))


def test_covariate_drift_inflates_amounts_and_shifts_pos_to_mobile(population) -> None:
    clean, cfg = drifted(covariate_drift_start=START + dt.timedelta(days=DRIFT_DAY))
    pd.testing.assert_frame_equal(
        generate_day(cfg, population, DRIFT_DAY - 1), generate_day(clean, population, DRIFT_DAY - 1)
    )
    truth, base = (
        generate_day(cfg, population, DRIFT_DAY),
        generate_day(clean, population, DRIFT_DAY),
    )
    assert truth[KEY].equals(base[KEY])
    plain = (truth["tx_fraud_scenario"] != 3) & (base["tx_fraud_scenario"] != 3)
    ratio = truth.loc[plain, "amount"] / base.loc[plain, "amount"]
    assert np.allclose(ratio[base.loc[plain, "amount"] > 1], 1.3, atol=0.01)
    # Scenario 1 still uses 220 on the inflated amounts.
    assert (truth.loc[truth["amount"] > 220, "tx_fraud"] == 1).all()
    switched = population.channel_shift[truth["customer_id"]]
    assert (truth.loc[switched, "channel"] == "mobile").all()
    assert (base.loc[switched, "channel"] == "pos").all()
    unchanged = ~switched
    assert truth.loc[unchanged, "channel"].equals(base.loc[unchanged, "channel"])


def test_channel_shift_is_thirty_percent_of_pos_customers(population) -> None:
    pos = population.channel == 0
    assert population.channel_shift[~pos].sum() == 0
    assert population.channel_shift.sum() == round(0.3 * pos.sum())


def test_concept_drift_injects_night_takeover(population) -> None:
    clean, cfg = drifted(concept_drift_start=START + dt.timedelta(days=DRIFT_DAY))
    before = generate_day(cfg, population, DRIFT_DAY - 1)
    pd.testing.assert_frame_equal(before, generate_day(clean, population, DRIFT_DAY - 1))
    assert (before["tx_fraud_scenario"] != 4).all()
    injected, handbook, terminals = 0, 0, set()
    for index in range(DRIFT_DAY, BASE["days"]):
        truth = generate_day(cfg, population, index)
        new = truth[truth["tx_fraud_scenario"] == 4]
        assert (new["tx_fraud"] == 1).all()
        assert new["amount"].between(1, 20).all()
        assert (new["tx_datetime"].dt.hour < 5).all()
        assert (population.region[new["customer_id"]] == SOUTH_EAST).all()
        assert (new["region"] == "south_east").all()
        _assert_reachable(population, new)
        # The rest of the day is exactly the day without drift, only renumbered.
        rest = truth[truth["tx_fraud_scenario"] != 4].drop(columns="transaction_id")
        base = generate_day(clean, population, index).drop(columns="transaction_id")
        pd.testing.assert_frame_equal(rest.reset_index(drop=True), base)
        assert truth["transaction_id"].is_unique
        injected += len(new)
        handbook += int(base["tx_fraud"].sum())
        terminals |= set(new["terminal_id"])
    expected = CONCEPT_FRAUD_RATIO * handbook
    assert 0.7 * expected < injected < 1.3 * expected
    # Spread over the owners' terminals, not a ring: no terminal's risk gives it away.
    assert len(terminals) > 0.8 * injected


def _assert_reachable(population, frame: pd.DataFrame) -> None:
    for customer, terminal in zip(frame["customer_id"], frame["terminal_id"], strict=True):
        row = slice(
            population.available_indptr[customer], population.available_indptr[customer + 1]
        )
        assert terminal in population.available_indices[row]


def test_gradual_drift_ramps_over_its_days(population) -> None:
    start = START + dt.timedelta(days=2)
    ramp = SimulatorConfig(
        **BASE, concept_drift_start=start, covariate_drift_start=start, drift_ramp_days=4
    )
    full = SimulatorConfig(**BASE, concept_drift_start=start, covariate_drift_start=start)
    assert [
        ramp.drift_intensity(start, start + dt.timedelta(days=k)) for k in (-1, 0, 1, 3, 6)
    ] == [
        0.0,
        0.25,
        0.5,
        1.0,
        1.0,
    ]
    first, last = generate_day(ramp, population, 2), generate_day(ramp, population, 6)
    assert generate_day(full, population, 6).equals(last)  # full strength once ramped
    counts = [(generate_day(ramp, population, i)["tx_fraud_scenario"] == 4).sum() for i in (2, 6)]
    assert counts[0] < 0.5 * counts[1]
    moved = lambda truth: (truth["channel"] == "mobile").mean()  # noqa: E731
    assert moved(generate_day(SimulatorConfig(**BASE), population, 2)) < moved(first) < moved(last)
    clean = generate_day(SimulatorConfig(**BASE), population, 2)
    plain = (first["tx_fraud_scenario"] == 0) & (first["amount"] > 1)
    ratio = (
        first.loc[plain, "amount"].median()
        / clean.loc[clean["tx_fraud_scenario"] == 0, "amount"].median()
    )
    assert 1.05 < ratio < 1.12  # a quarter of the way to x1.3


@pytest.mark.parametrize("scenario", list(DriftScenario))
def test_named_scenarios_switch_on_their_drift(scenario) -> None:
    start = START + dt.timedelta(days=3)
    cfg = SimulatorConfig(**BASE, **scenario.fields(start))
    concept = cfg.drift_intensity(cfg.concept_drift_start, start + dt.timedelta(days=1))
    covariate = cfg.drift_intensity(cfg.covariate_drift_start, start + dt.timedelta(days=1))
    expected = {
        DriftScenario.CONCEPT: (1.0, 0.0),
        DriftScenario.COVARIATE: (0.0, 1.0),
        DriftScenario.GRADUAL: (2 / 14, 2 / 14),
        DriftScenario.NONE: (0.0, 0.0),
    }[scenario]
    assert (concept, covariate) == pytest.approx(expected)
