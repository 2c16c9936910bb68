"""Feature-layer fixtures: hand-built raw rows, and homes with features and an applied Feast repo.

``import feast`` is slow: the Feast-backed homes are session-scoped and applied once.
"""

import datetime as dt
import shutil

import pytest

from evergreen.features.customer_spending import CUSTOMER_SPENDING, customer_spending_rows
from evergreen.features.tables import write_partition
from evergreen.features.terminal_risk import TERMINAL_RISK, terminal_risk_rows
from evergreen.ingest.partition import ingest_partition
from evergreen.settings import EvergreenSettings
from evergreen.warehouse import connect
from tests.conftest import START, day, make_settings

CREATED_AT = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def at(i: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    """A UTC instant during the i-th simulated day."""
    return dt.datetime.combine(day(i), dt.time(hour, minute, second), tzinfo=dt.UTC)


def insert_transactions(settings: EvergreenSettings, rows) -> None:
    """Raw transactions ``(transaction_id, tx_datetime, customer_id, terminal_id, amount)``."""
    with connect(settings.warehouse_path) as conn:
        for tx_id, ts, customer, terminal, amount in rows:
            naive = ts.astimezone(dt.UTC).replace(tzinfo=None)
            conn.execute(
                "INSERT INTO raw_transactions VALUES "
                "(?, ?, ?, ?, ?, 'north', 'pos', 'debit', ?, 'hand.parquet', now()::TIMESTAMP)",
                [tx_id, naive, customer, terminal, amount, naive.date()],
            )


def insert_labels(settings: EvergreenSettings, rows) -> None:
    """Raw labels ``(transaction_id, label, landed_on)``."""
    with connect(settings.warehouse_path) as conn:
        for tx_id, label, landed_on in rows:
            conn.execute(
                "INSERT INTO raw_labels VALUES (?, ?, ?, 'hand.parquet', now()::TIMESTAMP)",
                [tx_id, label, landed_on],
            )


def compute_features(settings: EvergreenSettings, days) -> None:
    """Write both feature tables' partitions for the given day indexes (as the assets do)."""
    with connect(settings.warehouse_path, read_only=True) as conn:
        for i in days:
            d = day(i)
            rows = customer_spending_rows(conn, d, CREATED_AT)
            write_partition(CUSTOMER_SPENDING, rows, settings.features_dir, d)
            rows = terminal_risk_rows(conn, d, CREATED_AT, settings.label_lookback_days)
            write_partition(TERMINAL_RISK, rows, settings.features_dir, d)


def tx_id(i: int, n: int) -> int:
    """A transaction id in the simulator's style: the day, then a sequence number."""
    return int((START + dt.timedelta(days=i)).strftime("%Y%m%d")) * 100_000_000 + n


@pytest.fixture
def warehouse_home(tmp_path) -> EvergreenSettings:
    """An empty home whose warehouse the test fills by hand."""
    return make_settings(tmp_path / "home")


def _hand_built_raw(settings: EvergreenSettings) -> None:
    daily = [(tx_id(i, 0), at(i, 12), 1, 101, 10.0 * (i + 1)) for i in range(12)]
    odd_ones = [
        (tx_id(1, 1), at(1, 10), 3, 103, 500.0),
        (tx_id(1, 2), at(1, 11), 3, 103, 20.0),
        (tx_id(1, 3), at(1, 12), 3, 104, 30.0),
    ]
    insert_transactions(settings, daily + odd_ones)
    on_time = [(tx_id(i, 0), 0, day(i + 3)) for i in range(9)]
    corrections = [
        (tx_id(0, 0), 1, day(9)),
        (tx_id(1, 1), 1, day(8)),
        (tx_id(1, 2), 0, day(4)),
        (tx_id(1, 3), 1, day(2)),
    ]
    insert_labels(settings, on_time + corrections)


@pytest.fixture(scope="session")
def hand_built(tmp_path_factory):
    """Hand-built cases; features of days 0..10 only; definitions applied. Returns (settings,
    store).

    Customer 1 pays 10 x (day + 1) at noon at terminal 101 every day of 0..11, each labelled
    genuine three days later. Terminal 103 has a fraud of day 1 whose label lands late (day 8)
    and a genuine one labelled on time (day 4); terminal 104 a fraud of day 1 labelled early
    (day 2). Transaction (0, 0) is labelled genuine on day 3, corrected to fraud on day 9.
    """
    from evergreen.features.feast_client import apply_definitions, feature_store

    settings = make_settings(tmp_path_factory.mktemp("hand_built") / "home")
    _hand_built_raw(settings)
    compute_features(settings, range(11))
    apply_definitions(settings)
    return settings, feature_store(settings)


@pytest.fixture(scope="session")
def simulated_feature_home(tmp_path_factory, clean_zone) -> EvergreenSettings:
    """The clean 12-day zone ingested, both feature tables for every day, definitions applied."""
    from evergreen.features.feast_client import apply_definitions

    settings = make_settings(tmp_path_factory.mktemp("simulated") / "home")
    shutil.copytree(clean_zone, settings.landing_dir, dirs_exist_ok=True)
    for i in range(12):
        ingest_partition(settings, "transactions", day(i))
        ingest_partition(settings, "labels", day(i))
    compute_features(settings, range(12))
    apply_definitions(settings)
    return settings
