"""The feature tables' SQL on hand-built raw rows: windows, zero rows, labels by landing day."""

import datetime as dt

import duckdb
import pyarrow.parquet as pq
import pytest

from evergreen.features.customer_spending import CUSTOMER_SPENDING, customer_spending_rows
from evergreen.features.tables import known_at, write_partition
from evergreen.features.terminal_risk import terminal_risk_rows
from evergreen.warehouse import connect
from tests.conftest import day
from tests.features.conftest import CREATED_AT, at, insert_labels, insert_transactions, tx_id


def _by_key(table, key):
    return {row[key]: row for row in table.to_pylist()}


def _customer_rows(settings, i):
    with connect(settings.warehouse_path, read_only=True) as conn:
        return _by_key(customer_spending_rows(conn, day(i), CREATED_AT), "customer_id")


def _terminal_rows(settings, i):
    with connect(settings.warehouse_path, read_only=True) as conn:
        rows = terminal_risk_rows(conn, day(i), CREATED_AT, settings.label_lookback_days)
        return _by_key(rows, "terminal_id")


def test_customer_windows_cover_days_before_and_including_the_day(warehouse_home):
    insert_transactions(
        warehouse_home,
        [
            (tx_id(0, 0), at(0, 9), 5, 1, 1.0),  # 30 days before day 30: outside every window
            (tx_id(24, 0), at(24, 9), 5, 1, 2.0),  # inside 7 and 30 days of day 30
            (tx_id(30, 0), at(30, 9), 5, 1, 4.0),
            (tx_id(30, 1), at(30, 23, 59), 5, 1, 6.0),
        ],
    )

    row = _customer_rows(warehouse_home, 30)[5]

    assert (row["customer_n_tx_1d"], row["customer_avg_amount_1d"]) == (2, 5.0)
    assert (row["customer_n_tx_7d"], row["customer_avg_amount_7d"]) == (3, 4.0)
    assert (row["customer_n_tx_30d"], row["customer_avg_amount_30d"]) == (3, 4.0)
    assert row["customer_std_amount_30d"] == pytest.approx((8 / 3) ** 0.5)
    assert row["event_timestamp"] == known_at(day(30)) == at(31)


def test_a_customer_leaving_the_window_gets_one_row_of_zeros_then_none(warehouse_home):
    insert_transactions(warehouse_home, [(tx_id(0, 0), at(0, 9), 6, 1, 10.0)])

    assert _customer_rows(warehouse_home, 29)[6]["customer_n_tx_30d"] == 1
    last = _customer_rows(warehouse_home, 30)[6]
    assert {k: v for k, v in last.items() if k.startswith("customer_") and k != "customer_id"} == {
        name: 0 for name in CUSTOMER_SPENDING.features
    }
    assert 6 not in _customer_rows(warehouse_home, 31)


def test_data_older_than_the_window_does_not_change_a_day(warehouse_home):
    insert_transactions(warehouse_home, [(tx_id(40, 0), at(40, 9), 7, 1, 10.0)])
    before = _customer_rows(warehouse_home, 40)
    insert_transactions(warehouse_home, [(tx_id(5, n), at(5, 9), 7, 1, 1e6) for n in range(50)])

    assert _customer_rows(warehouse_home, 40) == before


def test_terminal_risk_counts_labels_from_the_day_they_land(warehouse_home):
    insert_transactions(
        warehouse_home,
        [
            (tx_id(1, 0), at(1, 10), 1, 103, 50.0),  # fraud whose label lands late, on day 8
            (tx_id(1, 1), at(1, 11), 1, 103, 20.0),  # genuine, labelled on time (day 4)
            (tx_id(1, 2), at(1, 12), 1, 104, 30.0),  # fraud labelled early, on day 2
        ],
    )
    insert_labels(
        warehouse_home,
        [(tx_id(1, 0), 1, day(8)), (tx_id(1, 1), 0, day(4)), (tx_id(1, 2), 1, day(2))],
    )

    assert 104 not in _terminal_rows(warehouse_home, 1)
    assert _terminal_rows(warehouse_home, 2)[104]["terminal_risk_1d"] == 1.0
    on_time = _terminal_rows(warehouse_home, 7)[103]
    assert (on_time["terminal_n_tx_7d"], on_time["terminal_risk_7d"]) == (1, 0.0)
    late = _terminal_rows(warehouse_home, 8)[103]
    assert (late["terminal_n_tx_1d"], late["terminal_risk_1d"]) == (1, 1.0)
    assert (late["terminal_n_tx_7d"], late["terminal_risk_7d"]) == (2, 0.5)


def test_terminal_risk_windows_are_landing_days(warehouse_home):
    insert_transactions(warehouse_home, [(tx_id(0, n), at(0, 10), 1, 105, 5.0) for n in range(3)])
    insert_labels(
        warehouse_home,
        [(tx_id(0, 0), 1, day(3)), (tx_id(0, 1), 0, day(10)), (tx_id(0, 2), 0, day(33))],
    )

    row = _terminal_rows(warehouse_home, 33)[105]

    assert (row["terminal_n_tx_1d"], row["terminal_risk_1d"]) == (1, 0.0)
    assert (row["terminal_n_tx_30d"], row["terminal_risk_30d"]) == (2, 0.0)  # day 3 is out
    assert _terminal_rows(warehouse_home, 32)[105]["terminal_risk_30d"] == 0.5


def test_terminal_run_is_the_frauds_after_the_newest_landed_legitimate_label(warehouse_home):
    insert_transactions(
        warehouse_home,
        [
            (tx_id(2, 0), at(2, 9), 1, 106, 300.0),  # an early fraud, before a genuine one
            (tx_id(3, 0), at(3, 12), 1, 106, 20.0),  # genuine: the run starts after it
            (tx_id(4, 0), at(4, 6), 1, 106, 40.0),  # fraud: the run's first
            (tx_id(5, 0), at(5, 18), 1, 106, 60.0),  # fraud
            (tx_id(6, 0), at(6, 9), 1, 106, 80.0),  # fraud whose label lands only on day 14
        ],
    )
    insert_labels(
        warehouse_home,
        [(tx_id(d, 0), y, day(d + 7)) for d, y in ((2, 1), (3, 0), (4, 1), (5, 1))]
        + [(tx_id(6, 0), 1, day(14))],
    )

    row = _terminal_rows(warehouse_home, 12)[106]  # known at day 13 00:00; day 6's label not

    assert (row["terminal_run_frauds"], row["terminal_run_age_days"]) == (2, 9 - 6 / 24)
    assert (row["terminal_run_min_amount"], row["terminal_run_max_amount"]) == (40.0, 60.0)
    assert (row["terminal_labelled_tx_28d"], row["terminal_frauds_tx_28d"]) == (4, 3)
    assert row["terminal_first_fraud_age_28d"] == 11 - 9 / 24
    assert (row["terminal_n_tx_3d"], row["terminal_risk_3d"]) == (3, 2 / 3)
    clean = _terminal_rows(warehouse_home, 10)[106]  # newest landed label (day 3's) genuine
    assert (clean["terminal_run_frauds"], clean["terminal_run_age_days"]) == (0, 0.0)


def test_partition_file_is_replaced_and_readable_by_glob(warehouse_home):
    insert_transactions(warehouse_home, [(tx_id(0, 0), at(0, 9), 8, 1, 10.0)])
    with connect(warehouse_home.warehouse_path, read_only=True) as conn:
        rows = customer_spending_rows(conn, day(0), CREATED_AT)
    features_dir = warehouse_home.features_dir
    first = write_partition(CUSTOMER_SPENDING, rows, features_dir, day(0))
    again = write_partition(CUSTOMER_SPENDING, rows, features_dir, day(0))

    assert first == again and first.parent.name == f"date={day(0)}"
    assert pq.read_table(first).schema == CUSTOMER_SPENDING.schema
    glob = CUSTOMER_SPENDING.source_glob(features_dir)
    count = duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall()[0][0]
    assert count == 1
    assert not list(first.parent.glob(".*tmp"))


def test_feature_rows_are_known_at_the_next_midnight_utc():
    assert known_at(dt.date(2018, 4, 30)) == dt.datetime(2018, 5, 1, tzinfo=dt.UTC)
