"""The ledger: an append-only SQLite record of every model and every status change.

Two tables. ``models`` holds one row per registered artifact (tag, when, the training window and
cut-off, the data fingerprint, the artifact's sha256, metrics and metadata as JSON).
``model_events`` holds every status a model was given, with time, actor and reason; a model's
current status is its newest event. Rows are only ever inserted: triggers refuse UPDATE and
DELETE, and an INSERT whose key is taken (``INSERT OR REPLACE`` would delete the old row first),
so the history cannot be rewritten. Other layers add their own tables to the same file through
the one connection helper, ``ledger(settings, schema)``: every table of the file gets the same
triggers on every connection, so no layer can forget them.

Several processes write (Dagster runs, the CLI): WAL mode and a busy timeout let them wait for
one another, and ``transaction`` takes the write lock up front (``BEGIN IMMEDIATE``) so a
read-then-write (e.g. retire the champion, crown the next) is atomic. A decision goes through
``write``: a transaction whose connection the server dropped (a PostgreSQL restarted under it)
is run again on a new connection, unless it had committed, so it is recorded exactly once.

The local profile keeps the ledger in ``settings.ledger_path``; the cluster profile in
PostgreSQL (``settings.postgres_url``), through the same code: ``ledger_store`` owns what
differs (schema types, triggers, the write lock), every query here and in the other layers is
the same text on both.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from evergreen.models.ledger_store import (
    BUSY_TIMEOUT_S as BUSY_TIMEOUT_S,
)
from evergreen.models.ledger_store import (
    LedgerConnection,
    LedgerDatabaseError,
    LedgerRow,
)
from evergreen.settings import EvergreenSettings

__all__ = ["LedgerConnection", "LedgerDatabaseError", "LedgerRow"]


class ModelStatus(StrEnum):
    """A model's place in the lifecycle."""

    CANDIDATE = "candidate"  # trained, not judged yet
    REJECTED = "rejected"  # judged worse, or rejected by hand
    CHALLENGER = "challenger"  # as good within noise: kept for comparison, not served
    CHAMPION = "champion"  # the model served; exactly one at a time
    RETIRED = "retired"  # a former champion


# The lifecycle, as the one owner of status changes (``ModelRegistry.set_status``) enforces it:
# from each status, the statuses a model may be given next. A model stays where it is only to
# record a fact about it (a champion confirmed on live labels, an identical retraining).
# Registration makes a candidate; a champion leaves only when another is crowned (retired, or
# rejected when the crowning is a rollback); a retired or rejected model can be crowned again
# (a rollback, or a person overriding the gate).
TRANSITIONS: dict[ModelStatus, frozenset[ModelStatus]] = {
    ModelStatus.CANDIDATE: frozenset(
        {ModelStatus.CANDIDATE, ModelStatus.CHAMPION, ModelStatus.CHALLENGER, ModelStatus.REJECTED}
    ),
    ModelStatus.CHALLENGER: frozenset(
        {ModelStatus.CHALLENGER, ModelStatus.CHAMPION, ModelStatus.REJECTED}
    ),
    ModelStatus.CHAMPION: frozenset({ModelStatus.CHAMPION}),
    ModelStatus.RETIRED: frozenset(
        {ModelStatus.RETIRED, ModelStatus.CHAMPION, ModelStatus.CHALLENGER, ModelStatus.REJECTED}
    ),
    ModelStatus.REJECTED: frozenset({ModelStatus.REJECTED, ModelStatus.CHAMPION}),
}
# What becomes of the champion a crowning replaces.
DEMOTIONS = frozenset({ModelStatus.RETIRED, ModelStatus.REJECTED})


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS models (
    tag TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    cutoff TEXT NOT NULL,
    training_window TEXT NOT NULL,
    data_fingerprint TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    metrics TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS models_by_sha256 ON models (sha256);
CREATE TABLE IF NOT EXISTS model_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    tag TEXT NOT NULL REFERENCES models (tag),
    status TEXT NOT NULL CHECK (status IN ({", ".join(f"'{s.value}'" for s in ModelStatus)})),
    actor TEXT NOT NULL CHECK (length(trim(actor)) > 0),
    reason TEXT NOT NULL CHECK (length(trim(reason)) > 0)
);
CREATE INDEX IF NOT EXISTS model_events_by_tag ON model_events (tag, id);
"""


@dataclass(frozen=True)
class ModelEvent:
    """One status change: ``tag`` became ``status`` at ``at`` (UTC), by ``actor``, because."""

    id: int
    at: str
    tag: str
    status: ModelStatus
    actor: str
    reason: str


@dataclass(frozen=True)
class ModelRecord:
    """A registered model and its current status (its newest event)."""

    tag: str
    created_at: str
    cutoff: str
    training_window: str
    data_fingerprint: str
    sha256: str
    metrics: dict[str, Any]
    metadata: dict[str, Any]
    status: ModelStatus
    status_since: str
    # True when this registration found an identical artifact (same sha256) already registered.
    retrained_identical: bool = field(default=False, compare=False)

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])


def now() -> str:
    """The ledger's timestamps: UTC, ISO 8601, microseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def ledger_url(settings: EvergreenSettings) -> str:
    """The ledger's database: PostgreSQL on the cluster profile, else the home's SQLite file."""
    if settings.is_cluster:
        return settings.postgres_sqlalchemy_url
    return f"sqlite:///{settings.ledger_path}"


def connect_url(url: str, schema: str = "") -> LedgerConnection:
    """A new connection to the ledger at ``url`` with the models' tables and ``schema``
    created if missing, in autocommit mode, every table append-only. The caller closes it;
    ``ledger`` is the block that does."""
    conn = LedgerConnection(url)
    try:
        conn.ensure(SCHEMA + schema)
    except BaseException:
        conn.close()
        raise
    return conn


def connect_path(path: Path, schema: str = "") -> LedgerConnection:
    """A new connection to the SQLite ledger file ``path`` (``connect_url``), WAL and a busy
    timeout on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return connect_url(f"sqlite:///{path}", schema)


def ledger_tables(conn: LedgerConnection) -> list[str]:
    """Every table of the ledger (the engine's own bookkeeping aside)."""
    return conn.tables()


def ensure_append_only(conn: LedgerConnection, table: str) -> None:
    """Triggers that make ``table`` refuse UPDATE, DELETE and an INSERT onto a taken key (what
    ``INSERT OR REPLACE`` does, from any connection, recursive triggers on or not)."""
    conn.append_only(table)


@contextmanager
def ledger(settings: EvergreenSettings, schema: str = "") -> Iterator[LedgerConnection]:
    """The one way to the ledger: a connection to the profile's ledger (``ledger_url``) with
    the models' tables and ``schema`` (a layer's own ``CREATE TABLE IF NOT EXISTS``) ready
    and every table append-only, closed when the block ends."""
    if not settings.is_cluster:
        settings.ledger_path.parent.mkdir(parents=True, exist_ok=True)
    with closing(connect_url(ledger_url(settings), schema)) as conn:
        yield conn


@contextmanager
def transaction(conn: LedgerConnection) -> Iterator[LedgerConnection]:
    """A write transaction holding the write lock from its start; rolled back on error."""
    conn.begin_write()
    try:
        yield conn
    except BaseException:
        if not conn.lost:  # a dropped connection has nothing to roll back: the server did
            conn.rollback()
        raise
    conn.commit()


T = TypeVar("T")
WRITE_ATTEMPTS = 3  # a restart drops a connection once; more in a row is an outage


def write(
    connect: Callable[[], AbstractContextManager[LedgerConnection]],
    body: Callable[[LedgerConnection], T],
) -> T:
    """``body(conn)`` in a write transaction (``transaction``) on a connection from
    ``connect``, taking effect exactly once. When the server drops the connection (PostgreSQL
    restarted, the connection killed), the transaction is run again on a new connection
    (opening one waits for the server), unless the server had committed it before its answer
    was lost: its id's status says so, and ``body``'s result stands."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        ran = False
        with connect() as conn:
            try:
                with transaction(conn):
                    result = body(conn)
                    ran = True  # what fails from here on is the COMMIT
                return result
            except LedgerDatabaseError:
                if not conn.lost or attempt == WRITE_ATTEMPTS:
                    raise
                xid = conn.xid
        if ran and xid is not None:
            with connect() as check:
                if check.committed(xid):
                    return result
    raise AssertionError("unreachable")  # the last attempt returns or raises


def insert_model(
    conn: LedgerConnection,
    *,
    tag: str,
    cutoff: str,
    training_window: str,
    data_fingerprint: str,
    sha256: str,
    metrics: dict[str, Any],
    metadata: dict[str, Any],
) -> None:
    """Add a model's row."""
    conn.execute(
        "INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            tag,
            now(),
            cutoff,
            training_window,
            data_fingerprint,
            sha256,
            json.dumps(metrics, sort_keys=True),
            json.dumps(metadata, sort_keys=True),
        ],
    )


def append_event(
    conn: LedgerConnection, tag: str, status: ModelStatus | str, actor: str, reason: str
) -> ModelEvent:
    """Record that ``tag`` became ``status``; returns the event."""
    status = ModelStatus(status)
    at = now()
    cursor = conn.execute(
        "INSERT INTO model_events (at, tag, status, actor, reason) VALUES (?, ?, ?, ?, ?)",
        [at, tag, status.value, actor, reason],
    )
    return ModelEvent(int(cursor.lastrowid), at, tag, status, actor, reason)


_CURRENT = """
SELECT m.*, e.status, e.at AS status_since
FROM models AS m
JOIN model_events AS e ON e.id = (SELECT max(id) FROM model_events WHERE tag = m.tag)
"""


def model_records(conn: LedgerConnection, where: str = "", params: tuple = ()) -> list[ModelRecord]:
    """Models with their current status, newest first (``where`` filters on ``m``/``e``)."""
    rows = conn.execute(f"{_CURRENT} {where} ORDER BY m.created_at DESC, m.tag", params)
    return [_record(row) for row in rows]


def model_record(conn: LedgerConnection, tag: str) -> ModelRecord | None:
    """One model with its current status, or None."""
    found = model_records(conn, "WHERE m.tag = ?", (tag,))
    return found[0] if found else None


def records_with_status(conn: LedgerConnection, status: ModelStatus) -> list[ModelRecord]:
    """The models whose current status is ``status``."""
    return model_records(conn, "WHERE e.status = ?", (ModelStatus(status).value,))


def record_by_sha256(conn: LedgerConnection, sha256: str) -> ModelRecord | None:
    """The model registered with this artifact hash, if any."""
    found = model_records(conn, "WHERE m.sha256 = ?", (sha256,))
    return found[-1] if found else None


def events(conn: LedgerConnection, tag: str | None = None) -> list[ModelEvent]:
    """Status changes in the order they happened, of one model or all."""
    sql, params = "SELECT * FROM model_events", ()
    if tag is not None:
        sql, params = sql + " WHERE tag = ?", (tag,)
    rows = conn.execute(sql + " ORDER BY id", params)
    return [
        ModelEvent(r["id"], r["at"], r["tag"], ModelStatus(r["status"]), r["actor"], r["reason"])
        for r in rows
    ]


def _record(row: LedgerRow) -> ModelRecord:
    return ModelRecord(
        tag=row["tag"],
        created_at=row["created_at"],
        cutoff=row["cutoff"],
        training_window=row["training_window"],
        data_fingerprint=row["data_fingerprint"],
        sha256=row["sha256"],
        metrics=json.loads(row["metrics"]),
        metadata=json.loads(row["metadata"]),
        status=ModelStatus(row["status"]),
        status_since=row["status_since"],
    )
