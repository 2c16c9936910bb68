"""Our drift scenarios: a new night-time fraud pattern, shifted spending, and both growing
gradually. Each is off by default; ``scenarios.DriftScenario`` names the presets.

- Concept drift (``night_takeover``): stolen south-east cards make small payments between
  midnight and 05:00 at terminals their owners use, ``CONCEPT_FRAUD_RATIO`` times as many as
  the day's handbook frauds. Counted against the handbook's frauds rather than the volume, the
  pattern weighs the same in any world: the handbook's terminal and card compromises come in
  fixed numbers a day, so in a small world they are a large share of the volume (600 cards:
  ~6 %, where 1 % of the volume was a sixth of the frauds and a frozen model kept 81 % of its
  AP), in the handbook's 5,000 cards ~0.8 %. Half the day's frauds new, a model that misses
  them keeps about half its AP. The handbook's frauds never depend on the hour or the region,
  so a model trained before the drift scores these like genuine payments; a model that saw a
  few days of their labels learns "night, south-east, small" quickly. No terminal is hit
  twice on purpose: terminal risk stays low, so the pattern is not caught for free by the
  terminal-risk features once labels land.
- Covariate drift: amounts inflate by ``AMOUNT_INFLATION`` (scenario 1's threshold of 220 still
  applies to the inflated amounts) and 30 % of pos customers move to mobile.
- Intensity: 0 before the start, 1 from it on, or a linear ramp over ``drift_ramp_days``
  (``SimulatorConfig.drift_intensity``): the pattern's volume, the inflation and the share of
  movers all grow with it.
"""

from __future__ import annotations

import numpy as np

from evergreen.simulator.batch import DayBatch
from evergreen.simulator.population import MOBILE, SOUTH_EAST, Population
from evergreen.simulator.streams import Stream, day_rng

AMOUNT_INFLATION = 1.3
CONCEPT_SCENARIO = 4
CONCEPT_FRAUD_RATIO = 1.0  # injected frauds per handbook fraud of the day, at full intensity
CONCEPT_AMOUNT = (1.0, 20.0)
CONCEPT_END_SECONDS = 5 * 3600  # 00:00 to 05:00


def amount_factor(intensity: float) -> float:
    """The amount inflation at a drift intensity in [0, 1]."""
    return 1.0 + (AMOUNT_INFLATION - 1.0) * intensity


def night_takeover(
    population: Population, seed: int, day_index: int, handbook_frauds: int, intensity: float = 1.0
) -> DayBatch:
    """Small night-time frauds by stolen south-east cards at terminals their owners can reach,
    about ``CONCEPT_FRAUD_RATIO`` x ``intensity`` x the day's ``handbook_frauds`` of them."""
    rng = day_rng(seed, day_index, Stream.CONCEPT_DRIFT)
    reachable = population.n_available > 0
    customers = np.flatnonzero((population.region == SOUTH_EAST) & reachable)
    n = int(rng.poisson(CONCEPT_FRAUD_RATIO * intensity * handbook_frauds)) if len(customers) else 0
    customer = rng.choice(customers, n).astype(np.int64) if n else np.zeros(0, np.int64)
    pick = rng.random(n)
    slot = population.available_indptr[customer] + (pick * population.n_available[customer]).astype(
        np.int64
    )
    batch = DayBatch.genuine(
        seconds=rng.integers(0, CONCEPT_END_SECONDS, n),
        customer=customer,
        terminal=population.available_indices[slot].astype(np.int64),
        amount=np.round(rng.uniform(*CONCEPT_AMOUNT, n), 2),
    )
    batch.mark_fraud(np.arange(n), CONCEPT_SCENARIO)
    return batch


def channel_codes(population: Population, customer: np.ndarray, intensity: float) -> np.ndarray:
    """Channel code per transaction; under covariate drift the first ``intensity`` share of the
    chosen pos customers (in their drawn order) use mobile."""
    codes = population.channel[customer]
    if intensity > 0:
        moved = population.channel_shift_order[customer] < intensity
        codes = np.where(moved, np.int8(MOBILE), codes)
    return codes
