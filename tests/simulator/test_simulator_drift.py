"""Concept drift adds a new fraud pattern; covariate drift shifts amounts and channels."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from evergreen.simulator import SimulatorConfig, build_population, generate_day
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


def test_concept_drift_injects_night_card_testing(population) -> None:
    clean, cfg = drifted(concept_drift_start=START + dt.timedelta(days=DRIFT_DAY))
    before = generate_day(cfg, population, DRIFT_DAY - 1)
    pd.testing.assert_frame_equal(before, generate_day(clean, population, DRIFT_DAY - 1))
    assert (before["tx_fraud_scenario"] != 4).all()
    injected = 0
    for index in range(DRIFT_DAY, BASE["days"]):
        truth = generate_day(cfg, population, index)
        new = truth[truth["tx_fraud_scenario"] == 4]
        assert (new["tx_fraud"] == 1).all()
        assert new["amount"].between(1, 20).all()
        assert (new["tx_datetime"].dt.hour < 5).all()
        assert new["terminal_id"].isin(population.concept_terminals).all()
        assert (population.region[new["customer_id"]] == SOUTH_EAST).all()
        assert (new["region"] == "south_east").all()
        # The rest of the day is exactly the day without drift, only renumbered.
        rest = truth[truth["tx_fraud_scenario"] != 4].drop(columns="transaction_id")
        base = generate_day(clean, population, index).drop(columns="transaction_id")
        pd.testing.assert_frame_equal(rest.reset_index(drop=True), base)
        assert truth["transaction_id"].is_unique
        injected += len(new)
    expected = 0.005 * len(base) * (BASE["days"] - DRIFT_DAY)
    assert 0.6 * expected < injected < 1.4 * expected


def test_concept_terminals_are_one_percent_in_the_south_east(population) -> None:
    assert len(population.concept_terminals) == 40
    assert (population.terminal_region[population.concept_terminals] == SOUTH_EAST).all()


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
