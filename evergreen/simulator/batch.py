"""A day's transactions as parallel arrays, before they become a DataFrame."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass
class DayBatch:
    """Parallel arrays, one element per transaction, in generation order."""

    seconds: np.ndarray  # int64 seconds since midnight
    customer: np.ndarray  # int64
    terminal: np.ndarray  # int64
    amount: np.ndarray  # float64, rounded to cents
    fraud: np.ndarray  # int8, 0 or 1
    scenario: np.ndarray  # int8, 0 for genuine, else the last fraud scenario applied

    def __len__(self) -> int:
        return len(self.seconds)

    @classmethod
    def genuine(
        cls, seconds: np.ndarray, customer: np.ndarray, terminal: np.ndarray, amount: np.ndarray
    ) -> DayBatch:
        """A batch of transactions not (yet) marked as fraud."""
        zeros = np.zeros(len(seconds), dtype=np.int8)
        return cls(seconds, customer, terminal, amount, zeros, zeros.copy())

    def concat(self, other: DayBatch) -> DayBatch:
        """This batch followed by ``other``."""
        return DayBatch(
            *(np.concatenate([getattr(self, f.name), getattr(other, f.name)]) for f in fields(self))
        )

    def mark_fraud(self, index: np.ndarray, scenario: int) -> None:
        """Mark transactions as fraud; a later scenario overwrites an earlier one (handbook)."""
        self.fraud[index] = 1
        self.scenario[index] = scenario
