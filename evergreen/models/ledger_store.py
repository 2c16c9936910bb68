"""Where the ledger lives: one code path for SQLite (a file under the home, the local profile)
and PostgreSQL (the cluster profile), through SQLAlchemy Core.

Every layer writes plain SQL in the dialect both share (``?`` placeholders, ``CREATE TABLE IF
NOT EXISTS`` with SQLite's column types) and gets a ``LedgerConnection``: ``execute`` returns
rows that read by name or position (as ``sqlite3.Row``) and a cursor with ``lastrowid``, and a
failed statement raises the driver's own error (``sqlite3.DatabaseError``,
``psycopg2.DatabaseError``: ``LedgerDatabaseError`` names both). What differs per dialect is
kept here, in one place:

- the schema: on PostgreSQL ``INTEGER PRIMARY KEY AUTOINCREMENT`` becomes an identity column,
  ``INTEGER``/``REAL`` 64-bit, and the tables live in their own schema (``evergreen_ledger``),
  apart from Dagster's or Feast's tables in the same database; an ``INSERT`` into a table with
  an identity ``id`` gets ``RETURNING id`` for ``lastrowid``;
- append-only: SQLite triggers ``RAISE(ABORT)`` on UPDATE, DELETE and an INSERT onto a taken
  key (``INSERT OR REPLACE``); PostgreSQL triggers refuse UPDATE (``ON CONFLICT DO UPDATE``
  included), DELETE and TRUNCATE, and its primary keys refuse a taken key. Both raise
  "the ledger is append-only: <table> rows are never <updated|deleted|...>";
- the write lock: SQLite's ``BEGIN IMMEDIATE``; on PostgreSQL ``BEGIN`` and a transaction-level
  advisory lock, so read-then-write transactions run one at a time across hosts as they do
  across processes on one file.

Connections are not pooled (``NullPool``): each ``ledger()`` block opens its own, so a forked
run process never shares one and a restarted PostgreSQL is simply connected to again (opening
waits up to ``CONNECT_WAIT_S`` for it). A connection the server dropped says so (``lost``),
and each PostgreSQL write transaction knows its id (``xid``), so that ``ledger.write`` can tell
a transaction the server rolled back (run it again) from one it committed before its answer
was lost (done: never run twice).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

BUSY_TIMEOUT_S = 30.0
CONNECT_WAIT_S = 60.0
PG_SCHEMA = "evergreen_ledger"
_WRITE_LOCK = 0x65766772  # the advisory lock of ledger write transactions ("evgr")
_PRAGMAS = (
    f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}",
    "PRAGMA journal_mode = WAL",
    "PRAGMA foreign_keys = ON",
    # REPLACE's implicit delete fires the delete triggers only with recursive triggers on.
    "PRAGMA recursive_triggers = ON",
)
_REFUSE = "the ledger is append-only"


def _database_errors() -> tuple[type[BaseException], ...]:
    try:
        import psycopg2
    except ImportError:  # the local profile without the cluster extra
        return (sqlite3.DatabaseError,)
    return (sqlite3.DatabaseError, psycopg2.DatabaseError)


LedgerDatabaseError = _database_errors()


class LedgerRow(tuple):
    """A row by position or by column name, ``dict(row)`` included (as ``sqlite3.Row``)."""

    _names: tuple[str, ...] = ()

    @classmethod
    def of(cls, values: Sequence[Any], names: tuple[str, ...]) -> LedgerRow:
        row = cls(values)
        row._names = names
        return row

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names.index(key))
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


class LedgerCursor:
    """What ``execute`` returns: the rows (if any) and ``lastrowid`` of an INSERT."""

    def __init__(self, rows: list[LedgerRow], lastrowid: int | None) -> None:
        self._rows = rows
        self._next = 0
        self.lastrowid = lastrowid

    def fetchone(self) -> LedgerRow | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[LedgerRow]:
        rest, self._next = self._rows[self._next :], len(self._rows)
        return rest

    def __iter__(self) -> Iterator[LedgerRow]:
        return iter(self.fetchall())


@lru_cache(maxsize=16)
def engine(url: str):
    """The SQLAlchemy engine of a ledger URL (``sqlite:///PATH`` or ``postgresql+psycopg2://``),
    in autocommit mode: transactions are the ledger's own (``begin_write``)."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import NullPool

    if url.startswith("sqlite"):
        made = create_engine(
            url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
        )

        @event.listens_for(made, "connect")
        def _pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            for pragma in _PRAGMAS:
                cursor.execute(pragma)
            cursor.close()

        return made
    return create_engine(
        url,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"options": f"-c search_path={PG_SCHEMA}", "connect_timeout": 5},
    )


class LedgerConnection:
    """One connection to the ledger (module docstring); close it (``ledger()`` does)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        self._conn = _connect_waiting(engine(url))
        self._identity: set[str] = set()
        self.lost = False  # the server dropped this connection (restarted, killed)
        self.xid: int | None = None  # the open PostgreSQL write transaction's id

    # -- statements ------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> LedgerCursor:
        """Run one statement of the shared dialect with ``?`` placeholders."""
        returning = self._returning(sql)
        if self.dialect == "postgresql":
            sql = _pyformat(sql) if params else sql
        sql += returning
        result = self._driver(sql, tuple(params))
        rows: list[LedgerRow] = []
        if result.returns_rows:
            names = tuple(result.keys())
            rows = [LedgerRow.of(tuple(r), names) for r in result.fetchall()]
        if returning:
            return LedgerCursor([], int(rows[0][0]))
        lastrowid = result.lastrowid if self.dialect == "sqlite" else None
        return LedgerCursor(rows, lastrowid)

    def executescript(self, script: str) -> None:
        """Statements separated by ``;`` (DDL, no parameters)."""
        if self.dialect == "sqlite":
            self._conn.connection.dbapi_connection.executescript(script)
        else:
            self._driver(script, ())

    def _driver(self, sql: str, params: tuple):
        from sqlalchemy.exc import DBAPIError

        conn = self._conn if params else self._conn.execution_options(no_parameters=True)
        try:
            return conn.exec_driver_sql(sql, params) if params else conn.exec_driver_sql(sql)
        except DBAPIError as error:  # the driver's own error, as sqlite3 raised it before
            self.lost = self.lost or bool(error.connection_invalidated)
            raise error.orig from None

    def _returning(self, sql: str) -> str:
        if self.dialect != "postgresql" or "RETURNING" in sql.upper():
            return ""
        found = re.match(r"\s*INSERT\s+INTO\s+(\w+)", sql, re.IGNORECASE)
        return " RETURNING id" if found and found.group(1).lower() in self._identity else ""

    # -- transactions ----------------------------------------------------------------------
    def begin_write(self) -> None:
        """Begin a transaction holding the ledger's write lock from its start."""
        if self.dialect == "sqlite":
            self.execute("BEGIN IMMEDIATE")
        else:
            self.execute("BEGIN")
            # Its id in the same round trip: whether it committed can be asked after a loss.
            locked = self.execute(f"SELECT txid_current(), pg_advisory_xact_lock({_WRITE_LOCK})")
            self.xid = int(locked.fetchone()[0])

    def committed(self, xid: int) -> bool:
        """Whether PostgreSQL transaction ``xid`` (of another, lost connection) committed;
        waits while the server is still finishing it."""
        deadline = time.monotonic() + CONNECT_WAIT_S
        while True:
            row = self.execute("SELECT txid_status(?)", (xid,)).fetchone()
            status = row[0] if row is not None else None
            if status != "in progress" or time.monotonic() >= deadline:
                return status == "committed"
            time.sleep(0.05)

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        self.execute("ROLLBACK")

    def close(self) -> None:
        self._conn.close()

    # -- schema and append-only ------------------------------------------------------------
    def ensure(self, schema: str) -> None:
        """Create ``schema``'s tables if missing and make every ledger table append-only."""
        if self.dialect == "sqlite":
            self.executescript(schema)
            for table in self.tables():
                self.append_only(table)
            return
        key = (self.url, schema)
        if key not in _ENSURED:
            with _ENSURE_LOCK:
                self.begin_write()
                try:
                    self.execute(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")
                    self.executescript(postgres_ddl(schema))
                    self.executescript(_PG_REFUSE_FUNCTION)
                    for table in self.tables():
                        self.append_only(table)
                except BaseException:
                    self.rollback()
                    raise
                self.commit()
                rows = self.execute(
                    "SELECT table_name FROM information_schema.columns WHERE table_schema = ? "
                    "AND column_name = 'id' AND is_identity = 'YES'",
                    (PG_SCHEMA,),
                )
                _ENSURED[key] = {r[0] for r in rows}
        self._identity = _ENSURED[key]

    def tables(self) -> list[str]:
        """Every table of the ledger (the engine's own bookkeeping aside)."""
        if self.dialect == "sqlite":
            rows = self.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        else:
            rows = self.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = ?", (PG_SCHEMA,)
            )
        return sorted(r[0] for r in rows)

    def append_only(self, table: str) -> None:
        """Triggers that make ``table`` refuse UPDATE, DELETE and an INSERT onto a taken key,
        from any connection."""
        if self.dialect == "postgresql":
            for name, when, each in (
                ("no_change", "UPDATE OR DELETE", "ROW"),
                ("no_truncate", "TRUNCATE", "STATEMENT"),
            ):
                self.execute(
                    f"CREATE OR REPLACE TRIGGER {table}_{name} BEFORE {when} ON {table} "
                    f"FOR EACH {each} EXECUTE FUNCTION {PG_SCHEMA}.refuse_change()"
                )
            return
        refuse = f"BEGIN SELECT RAISE(ABORT, '{_REFUSE}: {table} rows are never "
        for action in ("UPDATE", "DELETE"):
            self.execute(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} BEFORE {action} ON "
                f"{table} {refuse}{action.lower()}d'); END"
            )
        keys = [r["name"] for r in self.execute(f"PRAGMA table_info({table})") if r["pk"]]
        if keys:
            taken = " AND ".join(f"{k} = NEW.{k}" for k in keys)
            self.execute(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_replace BEFORE INSERT ON {table} "
                f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {taken}) {refuse}replaced'); END"
            )


# PostgreSQL schemas made ready by this process -> the tables with an identity ``id``.
_ENSURED: dict[tuple[str, str], set[str]] = {}
_ENSURE_LOCK = threading.Lock()
_PG_REFUSE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {PG_SCHEMA}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{_REFUSE}: % rows are never %', TG_TABLE_NAME, lower(TG_OP) || 'd';
END
$$;
"""


def postgres_ddl(schema: str) -> str:
    """The shared dialect's DDL (SQLite's types) as PostgreSQL's: identity keys, 64-bit numbers."""
    ddl = re.sub(
        r"\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b",
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        schema,
        flags=re.IGNORECASE,
    )
    ddl = re.sub(r"\bREAL\b", "DOUBLE PRECISION", ddl, flags=re.IGNORECASE)
    ddl = re.sub(r"\bINTEGER\b", "BIGINT", ddl, flags=re.IGNORECASE)
    return re.sub(r"\bBLOB\b", "BYTEA", ddl, flags=re.IGNORECASE)


def _pyformat(sql: str) -> str:
    """``?`` placeholders (outside quoted text) as psycopg2's ``%s``; a literal ``%`` doubled."""
    out, quote = [], None
    for char in sql:
        if quote:
            quote = None if char == quote else quote
            out.append("%%" if char == "%" else char)
        elif char in "'\"":
            quote = char
            out.append(char)
        elif char == "?":
            out.append("%s")
        else:
            out.append("%%" if char == "%" else char)
    return "".join(out)


def _connect_waiting(made):
    """Connect, waiting a bounded time for a server that is (re)starting."""
    from sqlalchemy.exc import OperationalError

    deadline = time.monotonic() + (CONNECT_WAIT_S if made.dialect.name != "sqlite" else 0)
    while True:
        try:
            return made.connect()
        except OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)
