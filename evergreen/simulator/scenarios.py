"""The drift scenarios by name, as the simulator's config fields that switch them on, each from
its start day:

- ``concept``: a new fraud pattern, small night-time payments by stolen south-east cards
  (``drift.night_takeover``), as many as the day's handbook frauds; a model trained before it
  largely misses it.
- ``covariate``: spending inflation, amounts x1.3, and 30 % of pos customers move to mobile.
- ``gradual``: both, growing linearly to full strength over ``GRADUAL_RAMP_DAYS`` (two weeks).
- ``none``: nothing drifts (the handbook's statistics).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

GRADUAL_RAMP_DAYS = 14
DEFAULT_SCENARIO = "concept"


class DriftScenario(StrEnum):
    """A named drift; ``fields`` gives the ``SimulatorConfig`` fields that switch it on."""

    CONCEPT = "concept"
    COVARIATE = "covariate"
    GRADUAL = "gradual"
    NONE = "none"

    def fields(self, start: dt.date) -> dict[str, object]:
        """The config fields of this scenario starting on ``start``."""
        if self is DriftScenario.CONCEPT:
            return {"concept_drift_start": start}
        if self is DriftScenario.COVARIATE:
            return {"covariate_drift_start": start}
        if self is DriftScenario.GRADUAL:
            return {
                "concept_drift_start": start,
                "covariate_drift_start": start,
                "drift_ramp_days": GRADUAL_RAMP_DAYS,
            }
        return {}

    @property
    def ramp_days(self) -> int:
        """Days until the scenario is at full strength (1: at once)."""
        return GRADUAL_RAMP_DAYS if self is DriftScenario.GRADUAL else 1


SCENARIOS = tuple(s.value for s in DriftScenario)
