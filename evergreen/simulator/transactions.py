"""One day of transactions: the handbook's draws, vectorized, plus frauds and drift."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from evergreen.simulator.batch import DayBatch
from evergreen.simulator.config import SimulatorConfig
from evergreen.simulator.drift import amount_factor, channel_codes, night_takeover
from evergreen.simulator.frauds import apply_frauds
from evergreen.simulator.population import CARD_TYPES, CHANNELS, REGIONS, Population
from evergreen.simulator.streams import Stream, day_rng

SECONDS_PER_DAY = 86_400
TIME_MEAN, TIME_STD = SECONDS_PER_DAY / 2, 20_000
ID_DAY_FACTOR = 10**8  # transaction_id = YYYYMMDD * 10**8 + sequence within the day

TRUTH_COLUMNS = (
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "terminal_id",
    "amount",
    "region",
    "channel",
    "card_type",
    "tx_fraud",
    "tx_fraud_scenario",
)


def generate_day(cfg: SimulatorConfig, population: Population, day_index: int) -> pd.DataFrame:
    """The full truth of one day, labels included, before any bad-data corruption."""
    date = cfg.date_of(day_index)
    covariate = cfg.drift_intensity(cfg.covariate_drift_start, date)
    batch = draw_transactions(population, cfg.seed, day_index, amount_factor(covariate))
    fraud_day = day_index + cfg.fraud_burn_in_days
    apply_frauds(batch, cfg.seed, fraud_day, population.n_customers, population.n_terminals)
    concept = cfg.drift_intensity(cfg.concept_drift_start, date)
    if concept > 0:
        handbook_frauds = int(batch.fraud.sum())
        pattern = night_takeover(population, cfg.seed, day_index, handbook_frauds, concept)
        batch = batch.concat(pattern)
    return to_frame(batch, population, date, covariate)


def draw_transactions(
    population: Population, seed: int, day_index: int, amount_factor: float = 1.0
) -> DayBatch:
    """Poisson count per customer, normal time and amount, uniform reachable terminal."""
    rng = day_rng(seed, day_index, Stream.TRANSACTIONS)
    counts = rng.poisson(population.mean_nb_tx_per_day)
    n_available = population.n_available
    counts[n_available == 0] = 0  # a customer with no terminal in reach cannot pay anywhere
    customer = np.repeat(np.arange(population.n_customers, dtype=np.int64), counts)
    seconds = np.floor(rng.normal(TIME_MEAN, TIME_STD, len(customer)))
    mean = population.mean_amount[customer]
    amount = rng.normal(mean, mean / 2)
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * mean[negative])
    pick = rng.random(len(customer))
    # Draws outside the day are discarded: the transaction does not happen (as in the handbook).
    keep = (seconds >= 0) & (seconds < SECONDS_PER_DAY)
    customer, seconds, amount, pick = customer[keep], seconds[keep], amount[keep], pick[keep]
    slot = population.available_indptr[customer] + (pick * n_available[customer]).astype(np.int64)
    return DayBatch.genuine(
        seconds=seconds.astype(np.int64),
        customer=customer,
        terminal=population.available_indices[slot].astype(np.int64),
        amount=np.round(amount * amount_factor, 2),
    )


def to_frame(
    batch: DayBatch, population: Population, date: dt.date, channel_shift: float = 0.0
) -> pd.DataFrame:
    """Sort by time, number the day's transactions and attach the customers' segments."""
    order = np.argsort(batch.seconds, kind="stable")
    customer = batch.customer[order]
    day_start = np.datetime64(date, "us")
    return pd.DataFrame(
        {
            "transaction_id": day_id_base(date) + np.arange(len(order), dtype=np.int64),
            "tx_datetime": day_start + batch.seconds[order].astype("timedelta64[s]"),
            "customer_id": customer,
            "terminal_id": batch.terminal[order],
            "amount": batch.amount[order],
            "region": _categorical(population.region[customer], REGIONS),
            "channel": _categorical(channel_codes(population, customer, channel_shift), CHANNELS),
            "card_type": _categorical(population.card_type[customer], CARD_TYPES),
            "tx_fraud": batch.fraud[order],
            "tx_fraud_scenario": batch.scenario[order],
        },
        columns=list(TRUTH_COLUMNS),
    )


def day_id_base(date: dt.date) -> int:
    """The first transaction id of a day: YYYYMMDD followed by eight digits of sequence."""
    return (date.year * 10_000 + date.month * 100 + date.day) * ID_DAY_FACTOR


def _categorical(codes: np.ndarray, categories: tuple[str, ...]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, categories=list(categories))
