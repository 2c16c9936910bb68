"""Batch and append runs: generate days and land their files, identically either way."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from evergreen.simulator import bad_data as bd
from evergreen.simulator.config import BadData, BadDataKind, SimulatorConfig
from evergreen.simulator.landing import (
    STATE_FILE,
    labels_path,
    labels_table,
    landing_time,
    read_state,
    transactions_path,
    transactions_table,
    write_parquet,
    write_state,
)
from evergreen.simulator.population import Population, build_population
from evergreen.simulator.streams import Stream, day_rng
from evergreen.simulator.transactions import generate_day

SCENARIOS = (1, 2, 3, 4)


@dataclass
class SimulationSummary:
    """Counts of what a run generated (truth, before bad data) and how many files it wrote."""

    days: int = 0
    transactions: int = 0
    frauds: int = 0
    frauds_by_scenario: dict[int, int] = field(default_factory=lambda: dict.fromkeys(SCENARIOS, 0))
    files: int = 0

    @property
    def fraud_share(self) -> float:
        return self.frauds / self.transactions if self.transactions else 0.0

    def count_day(self, truth: pd.DataFrame) -> None:
        """Add one generated day."""
        self.days += 1
        self.transactions += len(truth)
        self.frauds += int(truth["tx_fraud"].sum())
        counts = np.bincount(truth["tx_fraud_scenario"], minlength=len(SCENARIOS) + 1)
        for scenario in SCENARIOS:
            self.frauds_by_scenario[scenario] += int(counts[scenario])


@dataclass(frozen=True)
class _File:
    path: Path
    table: pa.Table
    landing_index: int
    extra_minutes: int = 0


class _Landing:
    """Lands days one by one, regenerating (or reusing) any earlier day a file needs."""

    def __init__(self, cfg: SimulatorConfig, population: Population, out: Path) -> None:
        self.cfg, self.population, self.out = cfg, population, out
        self.summary = SimulationSummary()
        self._truth: dict[int, pd.DataFrame] = {}
        self._labels: dict[int, pa.Table] = {}

    def land(self, day_index: int) -> None:
        """Write every file that lands at the end of day ``day_index``."""
        self.summary.count_day(self._day(day_index))
        files = self._transaction_files(day_index)
        previous = self.cfg.date_of(day_index - 1)
        if day_index > 0 and BadDataKind.LATE_FILE in self.cfg.bad_data_on(previous):
            files += self._transaction_files(day_index - 1)
        labels = self._labels_file(day_index)
        for file in files + ([labels] if labels else []):
            if file.landing_index == day_index:
                date = self.cfg.date_of(file.landing_index)
                write_parquet(file.table, file.path, landing_time(date, file.extra_minutes))
                self.summary.files += 1
        self._forget_before(day_index)

    def _day(self, day_index: int) -> pd.DataFrame:
        if day_index not in self._truth:
            truth = generate_day(self.cfg, self.population, day_index)
            self._truth[day_index] = truth
            self._labels[day_index] = labels_table(truth)
        return self._truth[day_index]

    def _labels_of(self, day_index: int) -> pa.Table:
        if day_index not in self._labels:
            self._day(day_index)
        return self._labels[day_index]

    def _forget_before(self, day_index: int) -> None:
        # Keep the truth of today and yesterday (late files) and labels still to land.
        for day in [d for d in self._truth if d < day_index - 1]:
            del self._truth[day]
        for day in [d for d in self._labels if d <= day_index - self.cfg.label_delay_days]:
            del self._labels[day]

    def _transaction_files(self, day_index: int) -> list[_File]:
        """All transaction parts of one day, each with the day it lands on."""
        date = self.cfg.date_of(day_index)
        kinds = self.cfg.bad_data_on(date)
        rng = day_rng(self.cfg.seed, day_index, Stream.BAD_DATA)
        table = bd.corrupt_transactions(transactions_table(self._day(day_index)), kinds, rng)
        return [
            _File(transactions_path(self.out, date, part), part_table, day_index + delay, minutes)
            for part, (part_table, delay, minutes) in enumerate(bd.split_parts(table, kinds, date))
        ]

    def _labels_file(self, day_index: int) -> _File | None:
        """The labels landing on day ``day_index``: those of day ``day_index - delay``."""
        labelled = day_index - self.cfg.label_delay_days
        if labelled < 0:
            return None
        table = self._labels_of(labelled)
        date = self.cfg.date_of(day_index)
        if BadDataKind.UNKNOWN_LABEL_REFS in self.cfg.bad_data_on(date):
            rng = day_rng(self.cfg.seed, day_index, Stream.BAD_LABELS)
            table = bd.unknown_label_refs(table, rng, self.cfg.date_of(labelled), table.num_rows)
        return _File(labels_path(self.out, date), table, day_index)


def simulate(
    cfg: SimulatorConfig, out: Path | str, progress: Callable[[int], None] | None = None
) -> SimulationSummary:
    """Generate ``cfg.days`` days into an empty landing zone ``out``; ``progress`` gets each day."""
    out = Path(out)
    if (out / STATE_FILE).exists():
        raise FileExistsError(f"{out} already holds a simulation; append to it or pick another")
    write_state(out, cfg.model_copy(update={"days": 0}), 0)
    return _land_days(cfg, out, range(cfg.days), progress)


def append_day(
    out: Path | str, bad_data: Iterable[BadData | BadDataKind | str] = ()
) -> SimulationSummary:
    """Generate the next day of an existing landing zone; bare kinds apply to that day."""
    return append_days(out, 1, bad_data)


def append_days(
    out: Path | str,
    days: int = 1,
    bad_data: Iterable[BadData | BadDataKind | str] = (),
    progress: Callable[[int], None] | None = None,
) -> SimulationSummary:
    """Generate the next ``days`` days; bare kinds apply to the first of them."""
    out = Path(out)
    cfg, generated = read_state(out)
    first = cfg.date_of(generated)
    extra = tuple(_bad_data_for(entry, first) for entry in bad_data)
    cfg = SimulatorConfig.model_validate(
        {**cfg.model_dump(), "days": generated + days, "bad_data": cfg.bad_data + extra}
    )
    return _land_days(cfg, out, range(generated, generated + days), progress)


def _land_days(
    cfg: SimulatorConfig, out: Path, days: range, progress: Callable[[int], None] | None
) -> SimulationSummary:
    landing = _Landing(cfg, build_population(cfg), out)
    for day_index in days:
        landing.land(day_index)
        # Saved after every day, so an interrupted run can be continued by appending.
        write_state(out, cfg.model_copy(update={"days": day_index + 1}), day_index + 1)
        if progress is not None:
            progress(day_index)
    return landing.summary


def _bad_data_for(entry: BadData | BadDataKind | str, date: dt.date) -> BadData:
    """A bad-data entry for an appended day; entries for days already generated are refused."""
    if isinstance(entry, BadData):
        result = entry
    elif "@" in str(entry):
        result = BadData.parse(str(entry))
    else:
        result = BadData(kind=BadDataKind(entry), date=date)
    if result.date < date:
        raise ValueError(f"bad data {result} is for a day already generated (next is {date})")
    return result
