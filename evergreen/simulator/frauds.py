"""The handbook's three fraud scenarios, recomputed for one day from the draws of earlier days."""

from __future__ import annotations

import numpy as np

from evergreen.simulator.batch import DayBatch
from evergreen.simulator.streams import Stream, day_rng

SCENARIO_1_THRESHOLD = 220.0
SCENARIO_2_TERMINALS_PER_DAY = 2
SCENARIO_2_WINDOW_DAYS = 28
SCENARIO_3_CUSTOMERS_PER_DAY = 3
SCENARIO_3_WINDOW_DAYS = 14
SCENARIO_3_SHARE = 1 / 3
SCENARIO_3_AMOUNT_FACTOR = 5.0


def apply_frauds(
    batch: DayBatch, seed: int, day_index: int, n_customers: int, n_terminals: int
) -> None:
    """Apply scenarios 1, 2 and 3 in the handbook's order; each overwrites the one before."""
    scenario_1(batch)
    scenario_2(batch, compromised_terminals(seed, day_index, n_terminals))
    scenario_3(batch, compromised_customers(seed, day_index, n_customers), seed, day_index)


def scenario_1(batch: DayBatch) -> None:
    """Any amount above the threshold is a fraud."""
    batch.mark_fraud(np.flatnonzero(batch.amount > SCENARIO_1_THRESHOLD), 1)


def scenario_2(batch: DayBatch, terminals: np.ndarray) -> None:
    """Every transaction on a compromised terminal is a fraud."""
    batch.mark_fraud(np.flatnonzero(np.isin(batch.terminal, terminals)), 2)


def scenario_3(batch: DayBatch, customers: np.ndarray, seed: int, day_index: int) -> None:
    """A third of a compromised customer's transactions are frauds with five times the amount.

    The handbook samples a third of the window's transactions once per draw; a Bernoulli(1/3)
    per transaction and per covering draw has the same expectation and needs only this day.
    """
    candidates = np.flatnonzero(np.isin(batch.customer, customers))
    # A customer drawn on several days of the window gets one chance per draw, as in the handbook.
    draws = (batch.customer[candidates, None] == customers[None, :]).sum(axis=1)
    hits = day_rng(seed, day_index, Stream.SCENARIO_3_SAMPLE).binomial(draws, SCENARIO_3_SHARE)
    chosen, hits = candidates[hits > 0], hits[hits > 0]
    batch.amount[chosen] = np.round(batch.amount[chosen] * SCENARIO_3_AMOUNT_FACTOR**hits, 2)
    batch.mark_fraud(chosen, 3)


def compromised_terminals(seed: int, day_index: int, n_terminals: int) -> np.ndarray:
    """Terminals drawn on the days whose 28-day window covers ``day_index``."""
    size = min(SCENARIO_2_TERMINALS_PER_DAY, n_terminals)
    return _draws_in_window(
        seed, day_index, Stream.SCENARIO_2_TERMINALS, n_terminals, size, SCENARIO_2_WINDOW_DAYS
    )


def compromised_customers(seed: int, day_index: int, n_customers: int) -> np.ndarray:
    """Customers drawn on the days whose 14-day window covers ``day_index``, with repeats."""
    size = min(SCENARIO_3_CUSTOMERS_PER_DAY, n_customers)
    return _draws_in_window(
        seed, day_index, Stream.SCENARIO_3_CUSTOMERS, n_customers, size, SCENARIO_3_WINDOW_DAYS
    )


def _draws_in_window(
    seed: int, day_index: int, stream: Stream, population: int, size: int, window: int
) -> np.ndarray:
    """Concatenate each covering day's draw of ``size`` distinct ids; a day sees its own draw."""
    days = range(max(0, day_index - window + 1), day_index + 1)
    draws = [day_rng(seed, d, stream).choice(population, size=size, replace=False) for d in days]
    return np.concatenate(draws).astype(np.int64)
