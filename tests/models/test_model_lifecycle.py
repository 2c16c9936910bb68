"""The lifecycle: every status change goes through ``ModelRegistry.set_status``, which allows
exactly the transitions of ``ledger.TRANSITIONS`` and refuses the others in words; and every
ledger table, whichever layer made it, refuses UPDATE, DELETE and INSERT OR REPLACE."""

import itertools
import sqlite3

import pytest

from evergreen.loop.promotion_review import reviews
from evergreen.loop.retrain_policy import RetrainGovernor
from evergreen.models.ledger import TRANSITIONS, ledger, ledger_tables
from evergreen.models.registry import IllegalTransitionError, ModelStatus
from evergreen.rollout.records import rollout_ledger

S = ModelStatus


def _put(registry, tag: str, other: str, status: ModelStatus) -> None:
    """Bring ``tag`` to ``status`` by legal steps (``other`` helps retire a champion)."""
    if status is S.RETIRED:
        registry.set_status(tag, S.CHAMPION, "test", "crowned")
        registry.set_status(other, S.CHAMPION, "test", "replaces it")
    elif status is not S.CANDIDATE:
        registry.set_status(tag, status, "test", f"made {status.value}")
    assert registry.get(tag).status is status


PAIRS = list(itertools.product(S, S))


@pytest.mark.parametrize(("before", "after"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_each_transition_is_allowed_or_refused_as_the_lifecycle_says(
    registry, registered, before, after
):
    a, b, _ = registered
    _put(registry, a, b, before)
    history = registry.history()

    if after in TRANSITIONS[before]:
        event = registry.set_status(a, after, "someone", "a reason")
        assert registry.get(a).status is after
        assert (event.status, event.actor, event.reason) == (after, "someone", "a reason")
        assert registry.history(a)[-1] == event
    else:
        with pytest.raises(IllegalTransitionError, match=f"cannot become {after.value}"):
            registry.set_status(a, after, "someone", "a reason")
        assert registry.history() == history  # nothing written
        assert registry.get(a).status is before


def test_the_lifecycle_names_every_status_and_only_a_crowning_replaces_a_champion():
    assert set(TRANSITIONS) == set(S)
    assert TRANSITIONS[S.CHAMPION] == {S.CHAMPION}
    assert all(S.RETIRED not in TRANSITIONS[s] for s in S if s is not S.RETIRED)
    assert all(S.CANDIDATE not in TRANSITIONS[s] for s in S if s is not S.CANDIDATE)


def test_a_rollback_rejects_the_champion_and_crowns_its_predecessor_at_once(registry, registered):
    a, b, _ = registered
    registry.set_status(a, S.CHAMPION, "gate", "first")
    registry.set_status(b, S.CHAMPION, "gate", "better")

    registry.set_status(a, S.CHAMPION, "watch", "b was worse live", demote_champion_to=S.REJECTED)

    assert registry.champion().tag == a
    assert registry.get(b).status is S.REJECTED
    assert registry.history(b)[-1].reason == "b was worse live"
    with pytest.raises(ValueError, match="retired or rejected, not challenger"):
        registry.set_status(b, S.CHAMPION, "me", "x", demote_champion_to=S.CHALLENGER)


def _every_layers_tables(home) -> list[str]:
    """Open the ledger as each layer does, so every layer's tables exist."""
    RetrainGovernor(home).history()
    reviews(home)
    with rollout_ledger(home):
        pass
    with ledger(home) as conn:
        return ledger_tables(conn)


def _a_row(conn: sqlite3.Connection, table: str) -> dict:
    row = {}
    for column in conn.execute(f"PRAGMA table_info({table})"):
        name, kind = column[1], column[2].upper()
        row[name] = 1 if "INT" in kind or "REAL" in kind else "x"
        if name == "status":
            row[name] = "candidate"
    return row


def test_every_ledger_table_refuses_update_delete_and_replace(home):
    tables = _every_layers_tables(home)
    assert {"models", "model_events", "retrain_triggers", "promotion_reviews"} <= set(tables)
    assert {"rollouts", "rollout_steps", "routing_changes", "replica_events"} <= set(tables)
    # Another process's plain connection: no pragmas of ours, foreign keys off.
    conn = sqlite3.connect(home.ledger_path, isolation_level=None)
    try:
        for table in tables:
            row = _a_row(conn, table)
            columns, marks = ", ".join(row), ", ".join("?" for _ in row)
            conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))
            first = next(iter(row))
            for sql in (
                f"UPDATE {table} SET {first} = {first}",
                f"DELETE FROM {table}",
                f"INSERT OR REPLACE INTO {table} ({columns}) VALUES ({marks})",
                f"REPLACE INTO {table} ({columns}) VALUES ({marks})",
            ):
                params = list(row.values()) if "VALUES" in sql else []
                with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                    conn.execute(sql, params)
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 1, table
    finally:
        conn.close()
