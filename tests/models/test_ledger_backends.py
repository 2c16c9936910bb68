"""The ledger on both backends through the same code: SQLite (the local profile) and a real
PostgreSQL (the cluster profile, a throwaway server). Each layer's records read back alike,
every table refuses changes from a plain connection of another client, and read-then-write
decisions taken by several processes at once are taken once."""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import sqlite3

import pytest

from evergreen.loop.promotion_review import reviews
from evergreen.loop.retrain_policy import RetrainGovernor, Trigger
from evergreen.models.ledger import LedgerDatabaseError, ledger, ledger_tables
from evergreen.models.registry import ModelRegistry, ModelStatus
from evergreen.rollout import records
from evergreen.settings import EvergreenSettings
from tests.conftest import make_settings

S = ModelStatus
DAY = dt.datetime(2018, 5, 1, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def backend_home(request, tmp_path) -> EvergreenSettings:
    """A home whose ledger is a SQLite file, or (cluster profile) a fresh PostgreSQL db."""
    if request.param == "sqlite":
        return make_settings(tmp_path / "home")
    url = request.getfixturevalue("postgres_db")
    return EvergreenSettings(
        home=tmp_path / "home",
        profile="cluster",
        postgres_url=url,
        redis_url="redis://127.0.0.1:6379/0",  # not used by the ledger
        label_delay_days=3,
    ).ensure_dirs()


def _every_layers_tables(settings: EvergreenSettings) -> list[str]:
    RetrainGovernor(settings).history()
    reviews(settings)
    with records.rollout_ledger(settings):
        pass
    with ledger(settings) as conn:
        return ledger_tables(conn)


def test_the_lifecycle_reads_back_alike(backend_home, quick_models):
    registry = ModelRegistry(backend_home)
    a, b, c = (registry.register(m, "test", "fixture").tag for m in quick_models)
    registry.set_status(a, S.CHAMPION, "gate", "first")
    registry.set_status(b, S.CHAMPION, "gate", "better")
    registry.set_status(c, S.CHALLENGER, "gate", "within noise")
    registry.set_status(a, S.CHAMPION, "watch", "rollback", demote_champion_to=S.REJECTED)

    assert registry.champion().tag == a
    assert {r.tag: r.status for r in registry.records()} == {
        a: S.CHAMPION,
        b: S.REJECTED,
        c: S.CHALLENGER,
    }
    history = registry.history()
    assert [e.id for e in history] == sorted(e.id for e in history)
    assert [(e.tag, e.status) for e in history][-2:] == [(b, S.REJECTED), (a, S.CHAMPION)]
    assert registry.register(quick_models[0], "test", "again").retrained_identical


def test_rollout_records_and_ids(backend_home):
    with records.rollout_ledger(backend_home) as conn:
        first = records.insert_rollout(
            conn, kind="canary", target="process", revision="r0001", model_version="m:1",
            source="test", from_revision=None, from_model_version=None, config={"w": [10]},
            actor="test", reason="first",
        )  # fmt: skip
        steps = [records.insert_step(conn, first, p, {"r0001": 10}, "ok", "d") for p in "ab"]
        change = records.insert_routing_change(conn, {"r0001": 100}, {"r0001": "m:1"}, "t", first)
        records.insert_step(conn, first, records.COMPLETED, {"r0001": 100}, "ok", "done")
        records.insert_replica_event(conn, "r0001", 0, "started", 12, 3000, "up")
        rollout = records.get_rollout(conn, first)
        assert steps[1].id == steps[0].id + 1 and change.id >= 1
        assert rollout.status == records.COMPLETED and rollout.phases == ["a", "b", "completed"]
        assert records.list_rollouts(conn)[0].config == {"w": [10]}
        assert records.unfinished_rollouts(conn) == []
        assert records.routing_at(conn, records.now()).weights == {"r0001": 100}
        assert records.replica_events(conn, "r0001")[0]["port"] == 3000


def _plain_connection(settings: EvergreenSettings):
    """Another client's connection, none of Evergreen's code in between."""
    if not settings.is_cluster:
        return sqlite3.connect(settings.ledger_path, isolation_level=None)
    import psycopg2

    conn = psycopg2.connect(settings.postgres_url, options="-c search_path=evergreen_ledger")
    conn.autocommit = True
    return conn


def test_every_table_refuses_changes_from_any_client(backend_home, quick_models):
    registry = ModelRegistry(backend_home)
    tag = registry.register(quick_models[0], "test", "fixture").tag
    tables = _every_layers_tables(backend_home)
    assert {"models", "model_events", "retrain_triggers", "promotion_reviews"} <= set(tables)
    assert {"rollouts", "rollout_steps", "routing_changes", "replica_events"} <= set(tables)
    conn = _plain_connection(backend_home)
    sql = [
        "UPDATE model_events SET reason = 'rewritten'",
        "DELETE FROM model_events",
        "DELETE FROM models",
    ]
    if backend_home.is_cluster:
        sql += [
            "TRUNCATE models CASCADE",
            "INSERT INTO models SELECT * FROM models ON CONFLICT (tag) DO UPDATE SET sha256 = 'x'",
        ]
    else:
        sql += ["INSERT OR REPLACE INTO models SELECT * FROM models"]
    with contextlib.closing(conn):
        for statement in sql:
            with pytest.raises(LedgerDatabaseError, match="append-only"):
                conn.cursor().execute(statement)
    assert [e.reason for e in registry.history(tag)] == ["fixture"]


def _consider(settings_json: str) -> str:
    settings = EvergreenSettings.model_validate_json(settings_json)
    trigger = Trigger(kind="schedule", data_time=DAY)
    return RetrainGovernor(settings).consider(trigger).outcome


def test_concurrent_decisions_are_taken_once(backend_home):
    """Six processes ask for a retrain of the same data day at once: the budget (one a day)
    lets exactly one through, on either backend (the write lock serializes read-then-write)."""
    RetrainGovernor(backend_home).history()  # the table exists before the race
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        outcomes = pool.map(_consider, [backend_home.model_dump_json()] * 6)

    assert sorted(outcomes) == ["accepted"] + ["suppressed"] * 5
    history = RetrainGovernor(backend_home).history()
    assert [h["outcome"] for h in history].count("accepted") == 1 and len(history) == 6
