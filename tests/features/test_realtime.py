"""The request-time state: online reads equal the training set's values, writes are idempotent,
event-time, safe from two processes and bounded; unseen entities have empty windows. Each on
both stores: the SQLite file (the local profile) and a real Redis (the cluster profile)."""

import datetime as dt
import itertools
import multiprocessing

import pytest

from evergreen.features.realtime import (
    CARD_FEATURES,
    MAX_AHEAD,
    MAX_BEHIND,
    REALTIME_FEATURES,
    RETENTION_S,
    micros,
    out_of_bounds,
    training_features,
)
from evergreen.features.realtime_state import RealtimeState, create_tables, reconcile_day
from evergreen.warehouse import connect
from tests.conftest import day
from tests.features.conftest import at

PROJECT = "evergreen"
_PROJECTS = itertools.count()


def open_state(where: tuple):
    """A state on ``("sqlite", path)`` or ``("redis", connection_string, project)``."""
    if where[0] == "redis":
        from evergreen.features.realtime_redis import RedisRealtimeState

        return RedisRealtimeState.from_connection_string(where[1], where[2])
    return RealtimeState(where[1], PROJECT)


@pytest.fixture(params=["sqlite", "redis"])
def where(request, tmp_path) -> tuple:
    """Where a test's state lives: a fresh SQLite file, or a project of its own on Redis."""
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        return ("redis", f"{server.host}:{server.port},db=3", f"test{next(_PROJECTS)}")
    path = tmp_path / "online.db"
    conn = RealtimeState(path, PROJECT).connect()
    conn.execute("PRAGMA journal_mode = WAL")
    create_tables(conn, PROJECT)
    conn.close()
    return ("sqlite", path)


@pytest.fixture
def state(where):
    state = open_state(where)
    yield state
    state.close()


def _read(state: RealtimeState, customer: int, terminal: int, amount: float, when) -> dict:
    conn = state.connect()
    try:
        values = state.read(
            conn, {"customer_id": [customer], "terminal_id": [terminal], "amount": [amount]}, when
        )
    finally:
        conn.close()
    return {name: column[0] for name, column in values.items()}


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def test_served_one_by_one_a_day_reads_what_the_training_set_computes(
    simulated_feature_home, state
):
    """Days 0..9 reconciled in batch, then day 10 served in time order: every transaction's
    online vector equals the offline one (floats to 1e-9 relative)."""
    conn = state.connect()
    with connect(simulated_feature_home.warehouse_path, read_only=True) as warehouse:
        for i in range(10):
            reconcile_day(state, warehouse, day(i))
        served = warehouse.sql(
            "SELECT transaction_id, customer_id, terminal_id, tx_datetime, amount "
            "FROM raw_transactions WHERE partition_date = $d ORDER BY tx_datetime, transaction_id",
            params={"d": day(10)},
        ).fetchall()
        offline = training_features(warehouse, [r[0] for r in served], day(10), day(10))
    expected = {row["transaction_id"]: row for row in offline.to_pylist()}
    differing = 0
    for tx, customer, terminal, ts, amount in served:
        when = ts.replace(tzinfo=dt.UTC)
        state.record([(tx, customer, terminal, when, amount)])
        online = state.read(
            conn, {"customer_id": [customer], "terminal_id": [terminal], "amount": [amount]}, when
        )
        differing += any(
            not _close(online[name][0], expected[tx][name]) for name in REALTIME_FEATURES
        )
    assert len(served) > 300 and differing == 0
    assert any(row["card_tx_count_1h"] for row in expected.values())  # windows not all empty


def test_a_retry_a_replay_and_the_batch_count_a_transaction_once(state):
    first = (1, 7, 70, at(3, 12), 40.0)
    state.record([first])
    state.record([first])  # the router's retry
    state.record([(1, 7, 70, at(3, 12), 40.0), (2, 7, 70, at(3, 12, 30), 60.0)])  # a replay

    later = _read(state, 7, 70, 50.0, at(3, 13))

    assert state.held([1, 2]) == {1: 1, 2: 1}
    assert (later["card_tx_count_1h"], later["card_amount_sum_24h"]) == (1, 100.0)
    assert later["terminal_tx_count_1h"] == 1
    counts = state.reconcile(
        {
            "transaction_id": [1, 2, 3],
            "customer_id": [7, 7, 7],
            "terminal_id": [70, 70, 71],
            "tx_us": [micros(at(3, 12)), micros(at(3, 12, 30)), micros(at(3, 12, 45))],
            "amount": [40.0, 60.0, 5.0],
        }
    )
    assert (counts["written"], counts["already_held"]) == (1, 2)  # only the unserved one
    assert _read(state, 7, 70, 50.0, at(3, 13))["card_tx_count_1h"] == 2


def test_windows_follow_event_time_not_arrival_order(state):
    state.record([(2, 7, 70, at(3, 12, 30), 60.0)])  # the later payment arrives first

    earlier = _read(state, 7, 70, 40.0, at(3, 12))
    state.record([(1, 7, 70, at(3, 12), 40.0)])
    later = _read(state, 7, 70, 60.0, at(3, 12, 30))

    assert (earlier["card_tx_count_30d"], earlier["terminal_tx_count_24h"]) == (0, 0)
    assert (later["card_tx_count_1h"], later["card_seconds_since_previous"]) == (1, 1800.0)
    assert later["card_amount_to_mean_1h"] == 60.0 / 40.0


def test_an_unseen_card_and_terminal_have_empty_windows(state):
    state.record([(1, 7, 70, at(3, 12), 40.0)])

    unseen = _read(state, 10**12, 10**12, 50.0, at(3, 13))

    for name in CARD_FEATURES:
        kind = "count" if "count" in name else "sum" if "sum" in name else "none"
        assert unseen[name] == {"count": 0, "sum": 0.0, "none": None}[kind], name
    assert (unseen["terminal_tx_count_1h"], unseen["terminal_tx_count_24h"]) == (0, 0)


def test_state_per_card_is_bounded_by_the_retention(state):
    for i in range(60):  # a payment a day for 60 days
        state.record([(i, 7, 70, at(0, 12) + dt.timedelta(days=i), 10.0)])

    held = sum(state.held(range(60)).values())

    assert held == RETENTION_S // 86_400  # the newest, and those less than the retention older
    assert _read(state, 7, 70, 1.0, at(0, 13) + dt.timedelta(days=59))["card_tx_count_30d"] == 30


def _writer(where: tuple, ids: list[int]) -> None:
    state = open_state(where)
    for i in ids:
        state.record([(i, i % 5, i % 3, at(3, 12) + dt.timedelta(seconds=i), float(i))])
    state.close()


def test_two_replicas_writing_at_once_keep_every_transaction_once(state, where):
    """Two processes, each writing its own ids and half of the other's, interleaved."""
    context = multiprocessing.get_context("spawn")
    shares = [list(range(0, 300)), list(range(150, 450))]
    writers = [context.Process(target=_writer, args=(where, ids)) for ids in shares]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)

    assert [w.exitcode for w in writers] == [0, 0]
    assert set(state.held(range(450)).values()) == {1}
    last = _read(state, 0, 0, 1.0, at(3, 12) + dt.timedelta(seconds=450))
    assert last["card_tx_count_1h"] == 90  # ids 0, 5, ..., 445 within the hour
    assert state.data_time() == at(3, 12) + dt.timedelta(seconds=449)


def test_timestamps_far_from_the_data_time_are_named_out_of_bounds():
    now = at(3, 12)

    assert out_of_bounds(now + MAX_AHEAD, now) is None
    assert out_of_bounds(now - MAX_BEHIND, now) is None
    assert out_of_bounds(dt.datetime(2099, 1, 1, tzinfo=dt.UTC), None) is None  # empty state
    ahead = out_of_bounds(now + MAX_AHEAD + dt.timedelta(seconds=1), now)
    behind = out_of_bounds(now - MAX_BEHIND - dt.timedelta(seconds=1), now)
    assert "tx_datetime" in ahead and "after the data's current time" in ahead
    assert "tx_datetime" in behind and "before the data's current time" in behind


def test_the_spread_of_amounts_past_the_float_range_is_inf_not_an_error():
    """A schema-valid but absurd amount (1e200) squared passes the largest float: the spread
    is inf, as DuckDB's ``stddev_pop`` gives, not an OverflowError (it was a 500)."""
    import math

    from evergreen.features.realtime import _spread

    std, zscore = _spread([1e200, 1.0], 5.0)
    assert math.isinf(std) and zscore == 0.0
    assert _spread([10.0, 20.0], 25.0) == [5.0, 2.0]
