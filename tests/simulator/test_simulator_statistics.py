"""The simulator reproduces the Fraud Detection Handbook's reference statistics (chapter 3)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from evergreen.simulator import SimulatorConfig, build_population, generate_day
from evergreen.simulator.population import CHANNELS, REGIONS, region_of

HANDBOOK_TRANSACTIONS = 1_754_155
HANDBOOK_FRAUDS = 14_681
HANDBOOK_FRAUD_SHARE = 0.0084
HANDBOOK_BY_SCENARIO = {1: 973, 2: 9_077, 3: 4_631}


@pytest.fixture(scope="module")
def reference() -> dict:
    """Per-day counts of the reference run: 5,000 customers, 10,000 terminals, 183 days."""
    cfg = SimulatorConfig()
    population = build_population(cfg)
    transactions, frauds, by_scenario = [], [], np.zeros(5, dtype=np.int64)
    for day in range(cfg.days):
        truth = generate_day(cfg, population, day)
        transactions.append(len(truth))
        frauds.append(int(truth["tx_fraud"].sum()))
        by_scenario += np.bincount(truth["tx_fraud_scenario"], minlength=5)
    return {"transactions": transactions, "frauds": frauds, "by_scenario": by_scenario}


def test_reference_config_is_the_handbook_run() -> None:
    cfg = SimulatorConfig()
    assert (cfg.customers, cfg.terminals, cfg.days) == (5000, 10000, 183)
    assert cfg.start == dt.date(2018, 4, 1)
    assert cfg.effective_radius == pytest.approx(5.0)


def test_total_transactions_within_2_percent(reference: dict) -> None:
    total = sum(reference["transactions"])
    assert abs(total / HANDBOOK_TRANSACTIONS - 1) < 0.02, total


def test_fraud_share_within_10_percent_relative(reference: dict) -> None:
    share = sum(reference["frauds"]) / sum(reference["transactions"])
    assert abs(share / HANDBOOK_FRAUD_SHARE - 1) < 0.10, share


@pytest.mark.parametrize("scenario", [1, 2, 3])
def test_scenario_share_within_10_percent_relative(reference: dict, scenario: int) -> None:
    frauds = sum(reference["frauds"])
    share = reference["by_scenario"][scenario] / frauds
    expected = HANDBOOK_BY_SCENARIO[scenario] / HANDBOOK_FRAUDS
    assert abs(share / expected - 1) < 0.10, (scenario, share, expected)
    assert reference["by_scenario"][4] == 0  # no concept drift unless switched on


def test_first_month_has_fewer_frauds(reference: dict) -> None:
    per_day = np.array(reference["frauds"])
    assert per_day[:30].mean() < per_day[30:].mean()
    assert 70 < per_day[30:].mean() < 100  # the handbook: about 85 frauds a day


def test_day_truth_is_well_formed() -> None:
    cfg = SimulatorConfig(customers=500, terminals=1000, days=3)
    population = build_population(cfg)
    truth = generate_day(cfg, population, 2)
    date = dt.date(2018, 4, 3)
    assert truth["transaction_id"].iloc[0] == 20180403 * 10**8
    assert (np.diff(truth["transaction_id"]) == 1).all()
    assert truth["tx_datetime"].dtype == "datetime64[us]"
    assert truth["tx_datetime"].is_monotonic_increasing
    assert (truth["tx_datetime"].dt.date == date).all()
    assert (truth["amount"] >= 0).all()
    assert np.allclose(truth["amount"], truth["amount"].round(2))
    assert truth["tx_fraud"].dtype == np.int8 and truth["tx_fraud_scenario"].dtype == np.int8
    assert ((truth["tx_fraud"] == 1) == (truth["tx_fraud_scenario"] > 0)).all()
    _assert_terminals_reachable(truth, population)
    _assert_segments_follow_customers(truth, population)


def _assert_terminals_reachable(truth: pd.DataFrame, population) -> None:
    indptr, indices = population.available_indptr, population.available_indices
    for customer, terminal in truth[["customer_id", "terminal_id"]].head(300).itertuples(False):
        assert terminal in indices[indptr[customer] : indptr[customer + 1]]


def _assert_segments_follow_customers(truth: pd.DataFrame, population) -> None:
    customers = truth["customer_id"].to_numpy()
    regions = region_of(population.customer_x[customers], population.customer_y[customers])
    assert (truth["region"].to_numpy() == np.array(REGIONS)[regions]).all()
    assert (truth["channel"].to_numpy() == np.array(CHANNELS)[population.channel[customers]]).all()


def test_segment_shares_and_availability() -> None:
    population = build_population(SimulatorConfig(customers=20_000, terminals=20_000))
    channel_shares = np.bincount(population.channel, minlength=3) / population.n_customers
    card_shares = np.bincount(population.card_type, minlength=3) / population.n_customers
    assert np.allclose(channel_shares, [0.60, 0.25, 0.15], atol=0.015)
    assert np.allclose(card_shares, [0.55, 0.35, 0.10], atol=0.015)
    assert np.allclose(np.bincount(population.region) / population.n_customers, 0.25, atol=0.02)
    # r scales with density: about pi * 5**2 terminals in reach away from the edges.
    inner = (np.abs(population.customer_x - 50) < 40) & (np.abs(population.customer_y - 50) < 40)
    assert 70 < population.n_available[inner].mean() < 87


def test_any_day_is_generated_on_its_own() -> None:
    cfg = SimulatorConfig(customers=300, terminals=600, days=40)
    population = build_population(cfg)
    late_first = generate_day(cfg, population, 35)
    for day in range(35):
        generate_day(cfg, population, day)
    pd.testing.assert_frame_equal(late_first, generate_day(cfg, population, 35))


def test_a_burnt_in_world_starts_at_the_fraud_steady_state() -> None:
    """28 days into its scenarios, a world's first week has as many frauds as its later weeks
    (the handbook's own first week has far fewer), and its payments are the handbook's."""

    def frauds_per_day(burn_in: int) -> tuple[np.ndarray, list[pd.DataFrame]]:
        cfg = SimulatorConfig(customers=600, terminals=1200, days=28, fraud_burn_in_days=burn_in)
        population = build_population(cfg)
        days = [generate_day(cfg, population, d) for d in range(cfg.days)]
        return np.array([int(day["tx_fraud"].sum()) for day in days]), days

    handbook, handbook_days = frauds_per_day(0)
    steady, steady_days = frauds_per_day(28)
    assert handbook[:7].mean() < 0.5 * handbook[21:].mean()
    assert 0.8 < steady[:7].mean() / steady[21:].mean() < 1.25, steady
    # Only the fraud marks move: the same customers pay at the same terminals and times.
    for before, after in zip(handbook_days, steady_days, strict=True):
        assert before["transaction_id"].equals(after["transaction_id"])
        assert before["terminal_id"].equals(after["terminal_id"])
