"""Independent random streams, one per (day, purpose), so any day can be generated on its own."""

from __future__ import annotations

from enum import IntEnum

import numpy as np

# Day indices stay far below this key, so population streams never collide with day streams.
_POPULATION_KEY = 2**32 - 1


class Stream(IntEnum):
    """Purposes of random streams. Never zero: NumPy pads seed entropy with zeros."""

    CUSTOMERS = 1
    TERMINALS = 2
    SEGMENTS = 3
    CHANNEL_SHIFT = 4
    CONCEPT_TERMINALS = 5
    TRANSACTIONS = 11
    SCENARIO_2_TERMINALS = 12
    SCENARIO_3_CUSTOMERS = 13
    SCENARIO_3_SAMPLE = 14
    CONCEPT_DRIFT = 15
    BAD_DATA = 16
    BAD_LABELS = 17


def population_rng(seed: int, stream: Stream) -> np.random.Generator:
    """The stream for one part of the population."""
    return np.random.default_rng([seed, _POPULATION_KEY, int(stream)])


def day_rng(seed: int, day_index: int, stream: Stream) -> np.random.Generator:
    """The stream for one purpose on one day."""
    return np.random.default_rng([seed, day_index, int(stream)])
