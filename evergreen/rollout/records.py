"""The rollout tables of the ledger: append-only, in the same SQLite file as the models.

- ``rollouts``: one row per rollout (blue-green, canary, rollback, initial): what was deployed
  over what, with which configuration, by whom and why;
- ``rollout_steps``: every step of a rollout as it happened (weights, analysis, outcome); a
  rollout has ended when it has a terminal step (completed, rolled_back, failed), so one
  without is one whose controller died;
- ``routing_changes``: every weight change the router applied and its cause, which answers
  "what served at time T, and why";
- ``replica_events``: replicas started, ready, restarted by the watchdog, stopped.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from evergreen.settings import EvergreenSettings

COMPLETED, ROLLED_BACK, FAILED = "completed", "rolled_back", "failed"
TERMINAL = (COMPLETED, ROLLED_BACK, FAILED)

SCHEMA = """
CREATE TABLE IF NOT EXISTS rollouts (
    id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    revision TEXT NOT NULL,
    model_version TEXT NOT NULL,
    source TEXT NOT NULL,
    from_revision TEXT,
    from_model_version TEXT,
    config TEXT NOT NULL,
    actor TEXT NOT NULL CHECK (length(trim(actor)) > 0),
    reason TEXT NOT NULL CHECK (length(trim(reason)) > 0)
);
CREATE TABLE IF NOT EXISTS rollout_steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rollout_id TEXT NOT NULL REFERENCES rollouts (id),
    at TEXT NOT NULL,
    phase TEXT NOT NULL,
    weights TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    analysis TEXT
);
CREATE INDEX IF NOT EXISTS rollout_steps_by_rollout ON rollout_steps (rollout_id, id);
CREATE TABLE IF NOT EXISTS routing_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    weights TEXT NOT NULL,
    models TEXT NOT NULL,
    cause TEXT NOT NULL,
    rollout_id TEXT
);
CREATE INDEX IF NOT EXISTS routing_changes_by_time ON routing_changes (at);
CREATE TABLE IF NOT EXISTS replica_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    revision TEXT NOT NULL,
    replica INTEGER NOT NULL,
    event TEXT NOT NULL,
    pid INTEGER,
    port INTEGER,
    detail TEXT NOT NULL
);
"""


def now() -> str:
    """The ledger's timestamps (UTC, ISO 8601, microseconds)."""
    from evergreen.models.ledger import now as ledger_now

    return ledger_now()


def timestamp(moment: dt.datetime) -> str:
    """A datetime as the ledger writes it (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


@contextmanager
def rollout_ledger(settings: EvergreenSettings) -> Iterator[sqlite3.Connection]:
    """A ledger connection with the rollout tables (created, append-only) ready."""
    from evergreen.models.ledger import ledger

    with ledger(settings, SCHEMA) as conn:
        yield conn


T = TypeVar("T")


def write_rows(settings: EvergreenSettings, body: Callable[[sqlite3.Connection], T]) -> T:
    """``body(conn)`` as one ledger write (``ledger.write``) on the rollout tables: it takes
    effect exactly once, also when PostgreSQL drops the connection under it (run again on a
    new one unless it had committed). ``body`` only inserts: it may run twice."""
    from evergreen.models.ledger import write

    return write(lambda: rollout_ledger(settings), body)


@dataclass(frozen=True)
class Step:
    """One step of a rollout."""

    id: int
    at: str
    phase: str
    weights: dict[str, int]
    outcome: str
    detail: str
    analysis: dict[str, Any] | None = None


@dataclass(frozen=True)
class Rollout:
    """A rollout and its steps so far."""

    id: str
    started_at: str
    kind: str
    target: str
    revision: str
    model_version: str
    source: str
    from_revision: str | None
    from_model_version: str | None
    config: dict[str, Any]
    actor: str
    reason: str
    steps: list[Step] = field(default_factory=list)

    @property
    def status(self) -> str:
        """completed, rolled_back or failed once ended; otherwise in_progress."""
        ended = [s.phase for s in self.steps if s.phase in TERMINAL]
        return ended[-1] if ended else "in_progress"

    @property
    def ended_at(self) -> str | None:
        ended = [s.at for s in self.steps if s.phase in TERMINAL]
        return ended[-1] if ended else None

    @property
    def phases(self) -> list[str]:
        return [s.phase for s in self.steps]


@dataclass(frozen=True)
class RoutingChange:
    """The router's weights from ``at`` on, and why."""

    id: int
    at: str
    weights: dict[str, int]
    models: dict[str, str]
    cause: str
    rollout_id: str | None


def insert_rollout(
    conn: sqlite3.Connection,
    *,
    kind: str,
    target: str,
    revision: str,
    model_version: str,
    source: str,
    from_revision: str | None,
    from_model_version: str | None,
    config: dict[str, Any],
    actor: str,
    reason: str,
) -> str:
    """Record a new rollout; returns its id."""
    started = now()
    rollout_id = f"{started[:19].replace('-', '').replace(':', '')}-{revision}"
    conn.execute(
        "INSERT INTO rollouts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            rollout_id,
            started,
            kind,
            target,
            revision,
            model_version,
            source,
            from_revision,
            from_model_version,
            json.dumps(config, sort_keys=True),
            actor,
            reason,
        ],
    )
    return rollout_id


def insert_step(
    conn: sqlite3.Connection,
    rollout_id: str,
    phase: str,
    weights: dict[str, int],
    outcome: str,
    detail: str,
    analysis: dict[str, Any] | None = None,
) -> Step:
    """Record one step of a rollout."""
    at = now()
    cursor = conn.execute(
        "INSERT INTO rollout_steps (rollout_id, at, phase, weights, outcome, detail, analysis) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            rollout_id,
            at,
            phase,
            json.dumps(weights, sort_keys=True),
            outcome,
            detail,
            json.dumps(analysis, sort_keys=True) if analysis is not None else None,
        ],
    )
    return Step(int(cursor.lastrowid), at, phase, weights, outcome, detail, analysis)


def insert_routing_change(
    conn: sqlite3.Connection,
    weights: dict[str, int],
    models: dict[str, str],
    cause: str,
    rollout_id: str | None,
) -> RoutingChange:
    """Record weights the router now applies."""
    at = now()
    cursor = conn.execute(
        "INSERT INTO routing_changes (at, weights, models, cause, rollout_id) VALUES (?,?,?,?,?)",
        [at, json.dumps(weights, sort_keys=True), json.dumps(models), cause, rollout_id],
    )
    return RoutingChange(int(cursor.lastrowid), at, weights, models, cause, rollout_id)


def insert_replica_event(
    conn: sqlite3.Connection,
    revision: str,
    replica: int,
    event: str,
    pid: int | None,
    port: int | None,
    detail: str,
) -> None:
    """Record something that happened to a replica."""
    conn.execute(
        "INSERT INTO replica_events (at, revision, replica, event, pid, port, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [now(), revision, replica, event, pid, port, detail],
    )


def _step(row: sqlite3.Row) -> Step:
    analysis = json.loads(row["analysis"]) if row["analysis"] else None
    return Step(
        row["id"],
        row["at"],
        row["phase"],
        json.loads(row["weights"]),
        row["outcome"],
        row["detail"],
        analysis,
    )


def _rollout(conn: sqlite3.Connection, row: sqlite3.Row) -> Rollout:
    steps = conn.execute(
        "SELECT * FROM rollout_steps WHERE rollout_id = ? ORDER BY id", [row["id"]]
    )
    data = dict(row)
    config = json.loads(data.pop("config"))
    return Rollout(**data, config=config, steps=[_step(s) for s in steps])


def get_rollout(conn: sqlite3.Connection, rollout_id: str) -> Rollout | None:
    """One rollout with its steps."""
    row = conn.execute("SELECT * FROM rollouts WHERE id = ?", [rollout_id]).fetchone()
    return _rollout(conn, row) if row else None


def list_rollouts(conn: sqlite3.Connection, limit: int = 50) -> list[Rollout]:
    """The newest rollouts first."""
    rows = conn.execute(
        "SELECT * FROM rollouts ORDER BY started_at DESC, id DESC LIMIT ?", [limit]
    ).fetchall()
    return [_rollout(conn, r) for r in rows]


def unfinished_rollouts(conn: sqlite3.Connection) -> list[Rollout]:
    """Rollouts without a terminal step (their controller died), oldest first."""
    marks = ", ".join("?" for _ in TERMINAL)
    rows = conn.execute(
        f"SELECT * FROM rollouts WHERE id NOT IN (SELECT rollout_id FROM rollout_steps "
        f"WHERE phase IN ({marks})) ORDER BY started_at, id",
        list(TERMINAL),
    ).fetchall()
    return [_rollout(conn, r) for r in rows]


def _change(row: sqlite3.Row) -> RoutingChange:
    return RoutingChange(
        row["id"],
        row["at"],
        json.loads(row["weights"]),
        json.loads(row["models"]),
        row["cause"],
        row["rollout_id"],
    )


def routing_at(conn: sqlite3.Connection, at: str) -> RoutingChange | None:
    """The routing in force at ``at`` (the newest change at or before it)."""
    row = conn.execute(
        "SELECT * FROM routing_changes WHERE at <= ? ORDER BY at DESC, id DESC LIMIT 1", [at]
    ).fetchone()
    return _change(row) if row else None


def routing_changes(conn: sqlite3.Connection, since: str | None = None) -> list[RoutingChange]:
    """Routing changes in order (from ``since`` on, if given)."""
    rows = conn.execute(
        "SELECT * FROM routing_changes WHERE at >= ? ORDER BY id", [since or ""]
    ).fetchall()
    return [_change(r) for r in rows]


def weight_since(conn: sqlite3.Connection, revision: str, weight: int) -> str | None:
    """Since when ``revision`` has had ``weight``: the change after its last different one."""
    changes = routing_changes(conn)
    since = None
    for change in changes:
        same = change.weights.get(revision, 0) == weight
        since = (since or change.at) if same else None
    return since


def replica_events(conn: sqlite3.Connection, revision: str | None = None) -> list[dict]:
    """Replica events in order, of one revision or all."""
    sql, params = "SELECT * FROM replica_events", []
    if revision:
        sql, params = sql + " WHERE revision = ?", [revision]
    return [dict(r) for r in conn.execute(sql + " ORDER BY id", params)]
