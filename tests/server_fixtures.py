"""Session-scoped throwaway servers (a pytest plugin, ``-p tests.server_fixtures``): a Redis
and a PostgreSQL on free loopback ports in temp folders, stopped at the end even on failure.
Tests that need a clean state take a fresh database (``postgres_db``) or flush Redis."""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
from pathlib import Path

import pytest

from evergreen.ports import free_port
from tests.servers import PostgresServer, RedisServer

_DATABASES = itertools.count()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"), free_port())
    try:
        yield server.start()
    finally:
        server.stop()


@contextlib.contextmanager
def _throwaway_postgres(prefix: str):
    """A PostgreSQL server in a temp folder of its own, stopped and removed at the end. Not
    under pytest's temp root: that is root's only (0700), and the server runs as postgres."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    server = PostgresServer(folder, free_port())
    try:
        yield server.start()
    finally:
        server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    with _throwaway_postgres("evergreen-pg-") as server:
        yield server


@pytest.fixture
def postgres_db(postgres_server) -> str:
    """A database of its own for one test; returns its URL."""
    return postgres_server.create_database(f"test_{next(_DATABASES)}")


@pytest.fixture(scope="session")
def fault_postgres():
    """A PostgreSQL of its own for the fault tests, which stop and restart it: the session's
    server stays up for every other test."""
    with _throwaway_postgres("evergreen-pg-faults-") as server:
        yield server
