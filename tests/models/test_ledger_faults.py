"""The ledger on a PostgreSQL that restarts: decisions recorded while the server is stopped
and started again are each recorded exactly once (``ledger.write``). The fault tests' own
server (``fault_postgres``: the session's serves the other tests); a real TCP proxy between the
ledger and it loses a COMMIT's answer on purpose, the one case a retry could record twice."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
import time

from evergreen.loop.retrain_policy import RetrainGovernor, Trigger
from evergreen.models.ledger import ledger, write
from evergreen.settings import EvergreenSettings

DAY = dt.datetime(2018, 5, 1, tzinfo=dt.UTC)


def _cluster(tmp_path, url: str) -> EvergreenSettings:
    return EvergreenSettings(
        home=tmp_path / "home", profile="cluster", postgres_url=url,
        redis_url="redis://127.0.0.1:1/0",  # not used by the ledger
    ).ensure_dirs()  # fmt: skip


def _decide_across_a_restart(fault_postgres, decide) -> list[int]:
    """Two deciders call ``decide(i)`` (each its own ``i``s) while the server is stopped
    (fast: every connection dropped) and started again; asserts no call failed and returns
    every ``i`` decided."""
    attempted, failed, stop = [], [], threading.Event()

    def decider(first: int) -> None:
        for i in range(first, first + 1000):
            if stop.is_set():
                return
            try:
                decide(i)
            except Exception as error:  # noqa: BLE001 - counted, the assertion says what
                failed.append(f"{type(error).__name__}: {error}")
            attempted.append(i)

    deciders = [threading.Thread(target=decider, args=(n * 1000,)) for n in range(2)]
    for thread in deciders:
        thread.start()
    try:
        time.sleep(0.7)
        before = len(attempted)
        fault_postgres.stop("fast")
        time.sleep(0.3)  # decisions wait for the server meanwhile
        fault_postgres.start()
        time.sleep(0.7)
        assert len(attempted) > before, "no decision was taken across the restart"
    finally:
        stop.set()
        for thread in deciders:
            thread.join(60)
    assert not failed, failed[:3]
    return attempted


def test_decisions_are_recorded_once_across_postgres_restarts(fault_postgres, tmp_path):
    """Retrain decisions (a trigger each of its own data day) taken across a restart: the
    ledger holds exactly one row per attempt."""
    settings = _cluster(tmp_path, fault_postgres.create_database("ledger"))
    governor = RetrainGovernor(settings)
    governor.history()  # the table exists

    attempted = _decide_across_a_restart(
        fault_postgres,
        lambda i: governor.consider(Trigger("schedule", DAY + dt.timedelta(days=i))),
    )

    days = sorted(dt.datetime.fromisoformat(h["data_time"]) for h in governor.history())
    assert days == sorted(DAY + dt.timedelta(days=i) for i in attempted)  # once each


def test_rollout_records_are_written_once_across_postgres_restarts(fault_postgres, tmp_path):
    """What the supervisor and the rollout controller record (here routing changes, through
    their one writer) is recorded once per change across a restart, never lost."""
    from evergreen.rollout.records import (
        insert_routing_change,
        rollout_ledger,
        routing_changes,
        write_rows,
    )

    settings = _cluster(tmp_path, fault_postgres.create_database("rollouts"))

    def change(i: int) -> None:
        write_rows(
            settings, lambda conn: insert_routing_change(conn, {"r": 100}, {}, f"change {i}", None)
        )

    attempted = _decide_across_a_restart(fault_postgres, change)

    with rollout_ledger(settings) as conn:
        causes = sorted(c.cause for c in routing_changes(conn))
    assert causes == sorted(f"change {i}" for i in attempted)


class CommitEater:
    """A TCP proxy to PostgreSQL that, once armed, forwards a COMMIT to the server and then
    drops both sides before the answer comes back: the server commits, the client never
    learns it."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                server = socket.create_connection(("127.0.0.1", self.target))
                eating = threading.Event()  # this connection's COMMIT answer is dropped
                for source, sink, up in ((client, server, True), (server, client, False)):
                    args = (source, sink, up, eating)
                    threading.Thread(target=self._pump, args=args, daemon=True).start()

    def _pump(self, source, sink, upstream: bool, eating: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not upstream and eating.is_set():
                    return  # the answer never reaches the client
                if upstream and b"COMMIT\x00" in data and self.armed.is_set():
                    self.armed.clear()
                    eating.set()  # before the server can answer
                    sink.sendall(data)
                    time.sleep(0.3)  # the server commits meanwhile
                    for side in (source, sink):
                        side.shutdown(socket.SHUT_RDWR)
                        side.close()
                    return
                sink.sendall(data)

    def close(self) -> None:
        self.listener.close()


def _counted_insert(runs: list[int]):
    def body(conn) -> str:
        runs.append(1)
        conn.execute("INSERT INTO faults (note) VALUES (?)", ("decided",))
        return "decided"

    return body


def test_a_commit_whose_answer_was_lost_is_not_run_again(fault_postgres, tmp_path):
    url = fault_postgres.create_database("lost_commit")
    proxy = CommitEater(fault_postgres.port)
    try:
        settings = _cluster(tmp_path, url.replace(f":{fault_postgres.port}/", f":{proxy.port}/"))
        schema = (
            "CREATE TABLE IF NOT EXISTS faults (id INTEGER PRIMARY KEY AUTOINCREMENT, note TEXT);"
        )
        runs: list[int] = []
        with ledger(settings, schema):
            pass  # the schema made (its own COMMIT) before the proxy is armed
        proxy.armed.set()

        result = write(lambda: ledger(settings, schema), _counted_insert(runs))

        assert not proxy.armed.is_set()  # the COMMIT's answer was eaten
        with ledger(settings, schema) as conn:
            rows = conn.execute("SELECT note FROM faults").fetchall()
    finally:
        proxy.close()
    assert result == "decided" and len(runs) == 1  # committed: not run a second time
    assert [r[0] for r in rows] == ["decided"]


def test_a_transaction_dropped_before_its_commit_is_run_again(fault_postgres, tmp_path):
    settings = _cluster(tmp_path, fault_postgres.create_database("dropped"))
    schema = "CREATE TABLE IF NOT EXISTS faults (id INTEGER PRIMARY KEY AUTOINCREMENT, note TEXT);"
    runs: list[int] = []
    insert = _counted_insert(runs)

    def body(conn) -> str:
        result = insert(conn)
        if len(runs) == 1:  # the first run's connection is killed before it commits
            with ledger(settings, schema) as other:
                other.execute("SELECT pg_terminate_backend(?)", (_backend_pid(conn),))
        return result

    assert write(lambda: ledger(settings, schema), body) == "decided"
    with ledger(settings, schema) as conn:
        rows = conn.execute("SELECT note FROM faults").fetchall()
    assert len(runs) == 2 and [r[0] for r in rows] == ["decided"]


def _backend_pid(conn) -> int:
    return int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
