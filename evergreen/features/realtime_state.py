"""The online state behind the request-time features: each card's and terminal's recent events.

Two tables in the online store's SQLite file (created by ``feast apply`` through
``EvergreenSqliteOnlineStore.update``):

* ``<project>_transaction_events``: one row per transaction (``transaction_id`` the primary key),
  with its card, terminal, time (epoch µs) and amount; indexed by (card, time, amount) and
  (terminal, time), so a request's windows are two index range reads;
* ``<project>_data_time``: one row, the newest event time the state holds (the data's clock).

Writes, from ``/predict`` (``record``) and from the daily batch (``reconcile``):

* idempotent per transaction id: ``INSERT ... ON CONFLICT(transaction_id)``; a retried or
  replayed request adds nothing, and a landed day adds only what never reached ``/predict``
  (the batch's values win where a served copy differs: the warehouse is what training reads);
* event time: reads count only events strictly before the transaction's own time
  (``realtime.py``), so it does not matter in which order, or from which replica, they arrive;
* safe with several replicas: each write is one ``BEGIN IMMEDIATE`` transaction on SQLite in
  WAL mode (readers never block, writers queue on the lock with a busy timeout);
* bounded: writing an event deletes its card's events older than ``RETENTION_S`` before it,
  and a reconciliation deletes every event older than that before the data time, so an entity
  holds at most the longest window plus the data-time bounds of events.

``synchronous = NORMAL`` in WAL mode: a commit survives a crash of the process (a killed
replica), not of the machine; the day's batch reconciliation restores anything lost then.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evergreen.features.realtime import (
    CARD_FEATURES,
    LONGEST_S,
    RETENTION_S,
    TERMINAL_FEATURES,
    TERMINAL_WINDOWS,
    US,
    card_features,
    from_micros,
    micros,
    terminal_features,
)

_BUSY_TIMEOUT_MS = 10_000
_RECONCILE_CHUNK = 100_000
_TERMINAL_LONGEST_S = max(TERMINAL_WINDOWS.values())


def events_table(project: str) -> str:
    return f"{project}_transaction_events"


def clock_table(project: str) -> str:
    return f"{project}_data_time"


def create_tables(conn: sqlite3.Connection, project: str) -> None:
    """The state's tables and indexes (idempotent; ``feast apply`` calls it)."""
    events, clock = events_table(project), clock_table(project)
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {events} (transaction_id INTEGER PRIMARY KEY, "
        "customer_id INTEGER NOT NULL, terminal_id INTEGER NOT NULL, tx_us INTEGER NOT NULL, "
        "amount REAL NOT NULL)"
    )
    conn.execute(
        f"CREATE INDEX IF NOT EXISTS {events}_by_card ON {events} (customer_id, tx_us, amount)"
    )
    conn.execute(
        f"CREATE INDEX IF NOT EXISTS {events}_by_terminal ON {events} (terminal_id, tx_us)"
    )
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {clock} (id INTEGER PRIMARY KEY CHECK (id = 0), "
        "tx_us INTEGER NOT NULL)"
    )


class RealtimeState:
    """Reads and writes the request-time state in the online store's SQLite file. Reads use
    the caller's connection (the serving reader keeps one per thread); writes go through one
    connection of this object, serialised by a lock within the process and by SQLite's write
    lock between processes."""

    def __init__(self, path: Path | str, project: str) -> None:
        self.path, self.project = str(path), project
        self.events, self.clock = events_table(project), clock_table(project)
        self._card_sql = (
            f"SELECT tx_us, amount FROM {self.events} "
            "WHERE customer_id = ? AND tx_us > ? AND tx_us < ?"
        )
        self._terminal_sql = (
            f"SELECT tx_us FROM {self.events} WHERE terminal_id = ? AND tx_us > ? AND tx_us < ?"
        )
        self._insert_sql = (
            f"INSERT INTO {self.events} (transaction_id, customer_id, terminal_id, tx_us, amount) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(transaction_id) DO NOTHING"
        )
        self._prune_sql = f"DELETE FROM {self.events} WHERE customer_id = ? AND tx_us <= ?"
        self._writer: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------- connections

    def connect(self) -> sqlite3.Connection:
        """A connection for this state (autocommit: transactions are explicit)."""
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _write_conn(self) -> sqlite3.Connection:
        if self._writer is None:
            self._writer = self.connect()
        return self._writer

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    # ------------------------------------------------------------------------- reads

    def data_time(self, conn: sqlite3.Connection | None = None) -> dt.datetime | None:
        """The newest event time the state holds (None when empty)."""
        conn = conn or self._write_conn()
        row = conn.execute(f"SELECT tx_us FROM {self.clock} WHERE id = 0").fetchone()
        return None if row is None else from_micros(row[0])

    def read(
        self, conn: sqlite3.Connection, rows: dict[str, list[Any]], at: dt.datetime
    ) -> dict[str, list[Any]]:
        """The request-time features of ``rows`` (``customer_id``, ``terminal_id``,
        ``amount`` column lists) at ``at``: one list per feature of ``CARD_FEATURES`` and
        ``TERMINAL_FEATURES``."""
        at_us = micros(at)
        card_low, terminal_low = at_us - LONGEST_S * US, at_us - _TERMINAL_LONGEST_S * US
        card_rows, terminal_rows = [], []
        for customer, terminal, amount in zip(
            rows["customer_id"], rows["terminal_id"], rows["amount"], strict=True
        ):
            events = conn.execute(self._card_sql, (customer, card_low, at_us)).fetchall()
            card_rows.append(card_features(events, at_us, amount))
            times = conn.execute(self._terminal_sql, (terminal, terminal_low, at_us)).fetchall()
            terminal_rows.append(terminal_features([t for (t,) in times], at_us))
        values = as_columns(CARD_FEATURES, card_rows)
        values.update(as_columns(TERMINAL_FEATURES, terminal_rows))
        return values

    # ------------------------------------------------------------------------- writes

    def record(
        self,
        events: Sequence[tuple[int, int, int, dt.datetime, float]],
        conn: sqlite3.Connection | None = None,
        data_time: dt.datetime | None = None,
    ) -> None:
        """Add served transactions ``(transaction_id, customer_id, terminal_id, tx_datetime,
        amount)`` in one transaction: each at most once, its card's expired events dropped,
        the data time moved forward. ``conn``: the calling thread's read connection (writing
        through it keeps its page cache valid, which a write from another connection resets:
        a fifth of a request's time), else this object's own. ``data_time``: the data time
        the caller read just before; the clock row is then only written when this moves it."""
        if not events:
            return
        rows = [(tx, c, t, micros(ts), float(a)) for tx, c, t, ts, a in events]
        with contextlib.nullcontext() if conn is not None else self._lock:
            conn = conn if conn is not None else self._write_conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:  # one statement per row: executemany costs more for one
                    if conn.execute(self._insert_sql, row).rowcount:  # new: prune its card
                        conn.execute(self._prune_sql, (row[1], row[3] - RETENTION_S * US))
                newest = max(r[3] for r in rows)
                if data_time is None or newest > micros(data_time):
                    self._advance(conn, newest)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def reconcile(self, columns: dict[str, Sequence]) -> dict[str, int]:
        """Add a landed batch (column lists ``transaction_id, customer_id, terminal_id,
        tx_us, amount``): transactions never served are added, served ones are not added again
        (a served copy that differs from the batch takes the batch's values), events older than
        the retention before the data time are skipped and then dropped. Returns counts."""
        rows = sorted(
            zip(
                columns["transaction_id"],
                columns["customer_id"],
                columns["terminal_id"],
                columns["tx_us"],
                columns["amount"],
                strict=True,
            )
        )
        upsert = (
            f"INSERT INTO {self.events} (transaction_id, customer_id, terminal_id, tx_us, amount) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(transaction_id) DO UPDATE SET "
            "customer_id = excluded.customer_id, terminal_id = excluded.terminal_id, "
            "tx_us = excluded.tx_us, amount = excluded.amount "
            f"WHERE {self.events}.customer_id IS NOT excluded.customer_id "
            f"OR {self.events}.terminal_id IS NOT excluded.terminal_id "
            f"OR {self.events}.tx_us IS NOT excluded.tx_us "
            f"OR {self.events}.amount IS NOT excluded.amount"
        )
        with self._lock:
            conn = self._write_conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                newest = max((r[3] for r in rows), default=None)
                if newest is not None:
                    self._advance(conn, newest)
                clock = self.data_time(conn)
                horizon = micros(clock) - RETENTION_S * US if clock else None
                kept = [r for r in rows if horizon is None or r[3] > horizon]
                written = 0  # rows inserted, or corrected to the batch's values
                for start in range(0, len(kept), _RECONCILE_CHUNK):
                    written += conn.executemany(
                        upsert, kept[start : start + _RECONCILE_CHUNK]
                    ).rowcount
                dropped = 0
                if horizon is not None:
                    cursor = conn.execute(f"DELETE FROM {self.events} WHERE tx_us <= ?", (horizon,))
                    dropped = cursor.rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return {
            "rows": len(rows),
            "written": written,
            "already_held": len(kept) - written,
            "too_old": len(rows) - len(kept),
            "expired_dropped": dropped,
        }

    def _advance(self, conn: sqlite3.Connection, tx_us: int) -> None:
        conn.execute(
            f"INSERT INTO {self.clock} (id, tx_us) VALUES (0, ?) "
            "ON CONFLICT(id) DO UPDATE SET tx_us = max(tx_us, excluded.tx_us)",
            (tx_us,),
        )

    def held(self, transaction_ids: Iterable[int]) -> dict[int, int]:
        """How many rows the state holds for each of these transaction ids (0 or 1)."""
        conn = self._write_conn()
        ids = list(transaction_ids)
        marks = ",".join("?" * len(ids))
        found = dict.fromkeys(ids, 0)
        if ids:
            sql = (
                f"SELECT transaction_id, count(*) FROM {self.events} "
                f"WHERE transaction_id IN ({marks}) GROUP BY 1"
            )
            found.update(dict(conn.execute(sql, ids).fetchall()))
        return found


def as_columns(names: list[str], rows: list[list[Any]]) -> dict[str, list[Any]]:
    if not rows:
        return {name: [] for name in names}
    return {name: list(column) for name, column in zip(names, zip(*rows, strict=True), strict=True)}


DAY_EVENTS_SQL = """
SELECT transaction_id, customer_id, terminal_id, epoch_us(tx_datetime) AS tx_us, amount
FROM raw_transactions WHERE partition_date = $day
"""


def reconcile_day(state: RealtimeState, warehouse: Any, day: dt.date) -> dict[str, int]:
    """Reconcile the state with the landed transactions of ``day`` (a DuckDB warehouse
    connection): ``RealtimeState.reconcile`` of that partition."""
    table = warehouse.sql(DAY_EVENTS_SQL, params={"day": day}).to_arrow_table()
    return state.reconcile({name: table[name].to_pylist() for name in table.column_names})
