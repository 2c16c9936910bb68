"""Our drift scenarios: a new night-time card-testing fraud pattern, and shifted spending."""

from __future__ import annotations

import numpy as np

from evergreen.simulator.batch import DayBatch
from evergreen.simulator.population import MOBILE, SOUTH_EAST, Population
from evergreen.simulator.streams import Stream, day_rng

AMOUNT_INFLATION = 1.3
CONCEPT_SCENARIO = 4
CARD_TESTING_SHARE = 0.005  # injected transactions per genuine transaction of the day
CARD_TESTING_AMOUNT = (1.0, 20.0)
CARD_TESTING_END_SECONDS = 5 * 3600  # 00:00 to 05:00


def card_testing(population: Population, seed: int, day_index: int, volume: int) -> DayBatch:
    """Small night-time frauds by stolen south-east cards on the fraud ring's terminals."""
    rng = day_rng(seed, day_index, Stream.CONCEPT_DRIFT)
    customers = np.flatnonzero(population.region == SOUTH_EAST)
    terminals = population.concept_terminals
    n = rng.poisson(CARD_TESTING_SHARE * volume) if len(customers) and len(terminals) else 0
    batch = DayBatch.genuine(
        seconds=rng.integers(0, CARD_TESTING_END_SECONDS, n),
        customer=rng.choice(customers, n).astype(np.int64) if n else np.zeros(0, np.int64),
        terminal=rng.choice(terminals, n).astype(np.int64) if n else np.zeros(0, np.int64),
        amount=np.round(rng.uniform(*CARD_TESTING_AMOUNT, n), 2),
    )
    batch.mark_fraud(np.arange(n), CONCEPT_SCENARIO)
    return batch


def channel_codes(population: Population, customer: np.ndarray, shifted: bool) -> np.ndarray:
    """Channel code per transaction; under covariate drift the chosen pos customers use mobile."""
    codes = population.channel[customer]
    if shifted:
        codes = np.where(population.channel_shift[customer], np.int8(MOBILE), codes)
    return codes
