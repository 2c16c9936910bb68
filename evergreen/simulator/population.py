"""Customers, terminals, and which terminals each customer can reach."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from evergreen.simulator.config import SimulatorConfig
from evergreen.simulator.streams import Stream, population_rng

REGIONS = ("north_west", "north_east", "south_west", "south_east")
CHANNELS = ("pos", "web", "mobile")
CARD_TYPES = ("debit", "credit", "prepaid")
CHANNEL_PROBS = (0.60, 0.25, 0.15)
CARD_TYPE_PROBS = (0.55, 0.35, 0.10)

SOUTH_EAST = REGIONS.index("south_east")
POS = CHANNELS.index("pos")
MOBILE = CHANNELS.index("mobile")

# Share of pos customers who move to mobile under covariate drift.
CHANNEL_SHIFT_SHARE = 0.30

# Customers per k-d tree query: bounds the memory of the pair list at millions of customers.
_AVAILABILITY_CHUNK = 50_000


@dataclass(frozen=True, eq=False)
class Population:
    """Customer and terminal profiles as parallel arrays indexed by id."""

    customer_x: np.ndarray
    customer_y: np.ndarray
    mean_amount: np.ndarray
    mean_nb_tx_per_day: np.ndarray
    region: np.ndarray  # int8 codes into REGIONS
    channel: np.ndarray  # int8 codes into CHANNELS
    card_type: np.ndarray  # int8 codes into CARD_TYPES
    channel_shift: np.ndarray  # bool: pos customers who switch to mobile under covariate drift
    # Per customer, when it moves as the drift ramps up: its rank among the movers over their
    # number (in [0, 1)), and above 1 for a customer who never moves.
    channel_shift_order: np.ndarray
    terminal_x: np.ndarray
    terminal_y: np.ndarray
    terminal_region: np.ndarray  # int8 codes into REGIONS
    available_indptr: np.ndarray  # int32 CSR row pointers, one row per customer
    available_indices: np.ndarray  # int32 terminal ids, sorted within each row

    @property
    def n_customers(self) -> int:
        return len(self.customer_x)

    @property
    def n_terminals(self) -> int:
        return len(self.terminal_x)

    @property
    def n_available(self) -> np.ndarray:
        """Number of reachable terminals per customer."""
        return np.diff(self.available_indptr)


def region_of(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Region code by quadrant of the 100 x 100 square: north is y >= 50, east is x >= 50."""
    return (2 * (y < 50) + (x >= 50)).astype(np.int8)


def build_population(cfg: SimulatorConfig) -> Population:
    """Draw customers and terminals and link each customer to the terminals within the radius."""
    rng = population_rng(cfg.seed, Stream.CUSTOMERS)
    n = cfg.customers
    # Same parameters as the handbook; drawn column by column instead of customer by customer.
    customer_x, customer_y = rng.uniform(0, 100, n), rng.uniform(0, 100, n)
    mean_amount, mean_nb_tx = rng.uniform(5, 100, n), rng.uniform(0, 4, n)
    rng = population_rng(cfg.seed, Stream.TERMINALS)
    terminal_x, terminal_y = rng.uniform(0, 100, cfg.terminals), rng.uniform(0, 100, cfg.terminals)
    channel, card_type = _draw_segments(cfg.seed, n)
    shift_order = _draw_channel_shift(cfg.seed, channel)
    terminal_region = region_of(terminal_x, terminal_y)
    indptr, indices = available_terminals(
        np.column_stack([customer_x, customer_y]),
        np.column_stack([terminal_x, terminal_y]),
        cfg.effective_radius,
    )
    return Population(
        customer_x=customer_x,
        customer_y=customer_y,
        mean_amount=mean_amount,
        mean_nb_tx_per_day=mean_nb_tx,
        region=region_of(customer_x, customer_y),
        channel=channel,
        card_type=card_type,
        channel_shift=shift_order < 1.0,
        channel_shift_order=shift_order,
        terminal_x=terminal_x,
        terminal_y=terminal_y,
        terminal_region=terminal_region,
        available_indptr=indptr,
        available_indices=indices,
    )


def _draw_segments(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Channel and card type codes per customer."""
    rng = population_rng(seed, Stream.SEGMENTS)
    channel = rng.choice(len(CHANNELS), size=n, p=CHANNEL_PROBS).astype(np.int8)
    card_type = rng.choice(len(CARD_TYPES), size=n, p=CARD_TYPE_PROBS).astype(np.int8)
    return channel, card_type


def _draw_channel_shift(seed: int, channel: np.ndarray) -> np.ndarray:
    """Exactly the chosen share of pos customers switch to mobile, in a drawn order: each
    mover's rank over their number (in [0, 1)); 2.0 for everyone else."""
    pos = np.flatnonzero(channel == POS)
    chosen = population_rng(seed, Stream.CHANNEL_SHIFT).permutation(pos)
    movers = chosen[: round(CHANNEL_SHIFT_SHARE * len(pos))]
    order = np.full(len(channel), 2.0)
    order[movers] = np.arange(len(movers)) / max(1, len(movers))
    return order


def available_terminals(
    customers_xy: np.ndarray, terminals_xy: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, indices; int32) of the terminals strictly closer than ``radius``."""
    tree = cKDTree(terminals_xy)
    n_terminals = len(terminals_xy)
    counts = np.zeros(len(customers_xy), dtype=np.int64)
    chunks = []
    for start in range(0, len(customers_xy), _AVAILABILITY_CHUNK):
        block = cKDTree(customers_xy[start : start + _AVAILABILITY_CHUNK])
        pairs = block.sparse_distance_matrix(tree, radius, output_type="ndarray")
        # One sortable key per pair: rows come out by customer, then terminal, independently
        # of the tree's traversal order. The handbook's test is strict; the tree's is not.
        key = pairs["i"].astype(np.int64) * n_terminals + pairs["j"]
        key = np.sort(key[pairs["v"] < radius])
        customer, terminal = np.divmod(key, n_terminals)
        chunks.append(terminal.astype(np.int32))
        counts[start : start + len(block.data)] = np.bincount(customer, minlength=len(block.data))
    indptr = np.zeros(len(customers_xy) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    if indptr[-1] >= 2**31:
        raise ValueError("too many customer-terminal pairs for int32 indices; reduce the radius")
    indices = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int32)
    return indptr.astype(np.int32), indices
