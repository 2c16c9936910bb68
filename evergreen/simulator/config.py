"""The simulator's options: one frozen, JSON-serialisable model."""

from __future__ import annotations

import datetime as dt
import math
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class BadDataKind(StrEnum):
    """The kinds of bad upstream data the landing writer can inject (see ``bad_data``)."""

    RENAMED_COLUMN = "renamed_column"
    MISSING_COLUMN = "missing_column"
    WRONG_TYPE = "wrong_type"
    NULL_KEYS = "null_keys"
    DUPLICATE_ROWS = "duplicate_rows"
    NEGATIVE_AMOUNTS = "negative_amounts"
    MISDATED = "misdated"
    EMPTY_DAY = "empty_day"
    LATE_FILE = "late_file"
    REPEATED_FILE = "repeated_file"
    UNKNOWN_LABEL_REFS = "unknown_label_refs"


class BadData(BaseModel):
    """One bad-data injection: ``kind`` applied to the files landing on ``date``."""

    model_config = ConfigDict(frozen=True)

    kind: BadDataKind
    date: dt.date

    @model_validator(mode="before")
    @classmethod
    def _from_shorthand(cls, value: Any) -> Any:
        # Accept ("kind", date) pairs and "kind@YYYY-MM-DD" strings besides mappings.
        if isinstance(value, str):
            kind, sep, date = value.partition("@")
            if not sep:
                raise ValueError(f"expected KIND@YYYY-MM-DD, got {value!r}")
            return {"kind": kind.strip(), "date": date.strip()}
        if isinstance(value, tuple | list) and len(value) == 2:
            return {"kind": value[0], "date": value[1]}
        return value

    @classmethod
    def parse(cls, text: str) -> BadData:
        """Parse ``KIND@YYYY-MM-DD``."""
        return cls.model_validate(text)

    def __str__(self) -> str:
        return f"{self.kind.value}@{self.date.isoformat()}"


class SimulatorConfig(BaseModel):
    """Everything that determines the simulated data; equal configs give identical files."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    customers: int = Field(default=5000, ge=1, description="Number of customers (cards).")
    terminals: int = Field(default=10000, ge=1, description="Number of terminals.")
    start: dt.date = Field(default=dt.date(2018, 4, 1), description="First simulated day.")
    days: int = Field(default=183, ge=0, description="Number of simulated days.")
    seed: int = Field(default=0, ge=0, lt=2**32, description="Seed of every random stream.")
    label_delay_days: int = Field(default=7, ge=0, description="Days until a day's labels land.")
    radius: float | None = Field(
        default=None, gt=0, description="Customer-terminal reach; none scales 5 with density."
    )
    concept_drift_start: dt.date | None = Field(
        default=None, description="First day of the new small night-time fraud pattern."
    )
    covariate_drift_start: dt.date | None = Field(
        default=None, description="First day of inflated amounts and the pos-to-mobile shift."
    )
    drift_ramp_days: int = Field(
        default=0,
        ge=0,
        description="Days over which each drift grows linearly to full strength (0: at once).",
    )
    # The handbook's compromises start on its first day, so its fraud share climbs for a month
    # (28-day terminal and 14-day card compromises accumulate). A world this many days into
    # its fraud scenarios starts at their steady state instead: a short history is then
    # stationary, and a drift monitor sees only the drift a scenario adds.
    fraud_burn_in_days: int = Field(
        default=0,
        ge=0,
        description="Days the fraud scenarios have run before the first day (0: the handbook).",
    )
    bad_data: tuple[BadData, ...] = Field(default=(), description="Bad-data injections.")

    @field_validator("bad_data", mode="after")
    @classmethod
    def _canonical_order(cls, value: tuple[BadData, ...]) -> tuple[BadData, ...]:
        # A canonical order makes the saved config independent of how entries were added.
        return tuple(sorted(set(value), key=lambda b: (b.date, b.kind.value)))

    @model_validator(mode="after")
    def _check_bad_data_dates(self) -> SimulatorConfig:
        first_labels = self.start + dt.timedelta(days=self.label_delay_days)
        for entry in self.bad_data:
            if entry.date < self.start:
                raise ValueError(f"bad data {entry} is before the start {self.start}")
            if entry.kind is BadDataKind.UNKNOWN_LABEL_REFS and entry.date < first_labels:
                raise ValueError(f"bad data {entry}: no labels land before {first_labels}")
        return self

    @property
    def effective_radius(self) -> float:
        """The radius in use: 5 at the handbook's 10,000 terminals, same density at any scale."""
        if self.radius is not None:
            return self.radius
        return 5.0 * math.sqrt(10_000 / self.terminals)

    def date_of(self, day_index: int) -> dt.date:
        """The calendar date of a day index (0 is ``start``)."""
        return self.start + dt.timedelta(days=day_index)

    def index_of(self, date: dt.date) -> int:
        """The day index of a calendar date."""
        return (date - self.start).days

    def bad_data_on(self, date: dt.date) -> frozenset[BadDataKind]:
        """The bad-data kinds scheduled for the files landing on ``date``."""
        return frozenset(entry.kind for entry in self.bad_data if entry.date == date)

    def drift_intensity(self, start: dt.date | None, date: dt.date) -> float:
        """A drift's strength on ``date``: 0 before ``start`` (or without one), then 1, or
        (k + 1) / ``drift_ramp_days`` on the k-th day of a ramp."""
        if start is None or date < start:
            return 0.0
        if not self.drift_ramp_days:
            return 1.0
        return min(1.0, ((date - start).days + 1) / self.drift_ramp_days)

    def concept_drift_on(self, date: dt.date) -> bool:
        """Whether the concept-drift fraud pattern runs on ``date``."""
        return self.concept_drift_start is not None and date >= self.concept_drift_start

    def covariate_drift_on(self, date: dt.date) -> bool:
        """Whether covariate drift (inflation, channel shift) applies on ``date``."""
        return self.covariate_drift_start is not None and date >= self.covariate_drift_start
