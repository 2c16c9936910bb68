"""The retrain policy: which retrain triggers become retrains, and why the others do not.

Every trigger is recorded, accepted or suppressed, with its reason, in the append-only
``retrain_triggers`` table of the ledger. Time is the data's time (the day a trigger is about),
not the wall clock, so a replayed or simulated stretch of days is governed exactly as a live one.

- Hysteresis: a signal (drift, performance decay) fires when it reaches its ``enter`` level; once
  it has caused a retrain it stays disarmed until it falls back to its ``exit`` level, so a signal
  hovering at the threshold retrains once, not every day.
- Cooldown: no retrain within ``cooldown`` of the last accepted one, whatever asks.
- Budget: at most ``max_per_day`` accepted retrains per calendar day.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass, field
from typing import Literal

from evergreen.settings import EvergreenSettings

TriggerKind = Literal["drift", "performance", "schedule", "fresh_data", "manual"]
# Signals measured on a scale with hysteresis; the others ask outright.
_MEASURED: tuple[str, ...] = ("drift", "performance")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS retrain_triggers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at TEXT NOT NULL,
    data_time TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity REAL,
    outcome TEXT NOT NULL,          -- accepted, suppressed, rearmed
    reason TEXT NOT NULL,
    evidence TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class RetrainPolicy:
    """Bounds on retraining; severities are in the signal's own unit (see ``Trigger``)."""

    cooldown: dt.timedelta = dt.timedelta(days=1)
    max_per_day: int = 1
    drift_enter: float = 0.3  # share of features drifted
    drift_exit: float = 0.15
    performance_enter: float = 0.2  # relative drop of live AP against the model's evaluation AP
    performance_exit: float = 0.1

    def levels(self, kind: str) -> tuple[float, float]:
        """(enter, exit) levels of a measured signal."""
        return {
            "drift": (self.drift_enter, self.drift_exit),
            "performance": (self.performance_enter, self.performance_exit),
        }[kind]


@dataclass(frozen=True)
class Trigger:
    """A request to retrain: what asks, about which data time, how strongly, on what evidence."""

    kind: TriggerKind
    data_time: dt.datetime
    severity: float | None = None
    evidence: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The policy's answer to one trigger."""

    accepted: bool
    reason: str
    outcome: str  # accepted, suppressed, rearmed, below_threshold


class RetrainGovernor:
    """Applies a ``RetrainPolicy`` to triggers and keeps the record in the ledger."""

    def __init__(self, settings: EvergreenSettings, policy: RetrainPolicy | None = None):
        self.settings = settings
        self.policy = policy or RetrainPolicy()

    def _connect(self):
        """The ledger with this table (append-only, as every ledger table), closed after."""
        from evergreen.models.ledger import ledger

        return ledger(self.settings, _SCHEMA)

    def consider(self, trigger: Trigger) -> Decision:
        """Decide on a trigger and record the decision (a measured signal below its level is
        recorded only when it re-arms)."""
        from evergreen.models.ledger import transaction

        # One decision at a time across processes: the write lock is taken before reading.
        with self._connect() as conn, transaction(conn):
            decision = self._decide(conn, trigger)
            if decision.outcome != "below_threshold":
                self._record(conn, trigger, decision)
        return decision

    def _decide(self, conn: sqlite3.Connection, trigger: Trigger) -> Decision:
        if trigger.kind in _MEASURED:
            enter, exit_ = self.policy.levels(trigger.kind)
            severity = trigger.severity or 0.0
            armed = self._armed(conn, trigger.kind)
            if severity < enter:
                if not armed and severity <= exit_:
                    return Decision(
                        False, f"{trigger.kind} {severity:.3g} <= {exit_}: re-armed", "rearmed"
                    )
                return Decision(
                    False, f"{trigger.kind} {severity:.3g} below {enter}", "below_threshold"
                )
            if not armed:
                return Decision(
                    False,
                    f"{trigger.kind} {severity:.3g} still above its exit level {exit_} since it "
                    "last fired (hysteresis): not asking again",
                    "suppressed",
                )
        return self._within_bounds(conn, trigger)

    def _within_bounds(self, conn: sqlite3.Connection, trigger: Trigger) -> Decision:
        last = self._last_accepted(conn)
        if last is not None and trigger.data_time - last < self.policy.cooldown:
            return Decision(
                False,
                f"cooldown: last retrain at {last.isoformat()}, within {self.policy.cooldown}",
                "suppressed",
            )
        today = self._accepted_on(conn, trigger.data_time.date())
        if today >= self.policy.max_per_day:
            return Decision(
                False,
                f"budget: {today} retrain(s) already on {trigger.data_time.date()} "
                f"(max {self.policy.max_per_day} a day)",
                "suppressed",
            )
        return Decision(True, f"{trigger.kind}: retrain requested", "accepted")

    def _armed(self, conn: sqlite3.Connection, kind: str) -> bool:
        row = conn.execute(
            "SELECT outcome FROM retrain_triggers WHERE kind = ? "
            "AND outcome IN ('accepted', 'rearmed') ORDER BY id DESC LIMIT 1",
            (kind,),
        ).fetchone()
        # Only a retrain disarms: a signal held back by the cooldown or the budget asks again.
        return row is None or row[0] == "rearmed"

    def _last_accepted(self, conn: sqlite3.Connection) -> dt.datetime | None:
        row = conn.execute(
            "SELECT max(data_time) FROM retrain_triggers WHERE outcome = 'accepted'"
        ).fetchone()
        return dt.datetime.fromisoformat(row[0]) if row and row[0] else None

    def _accepted_on(self, conn: sqlite3.Connection, day: dt.date) -> int:
        return conn.execute(
            "SELECT count(*) FROM retrain_triggers WHERE outcome = 'accepted' "
            "AND substr(data_time, 1, 10) = ?",
            (day.isoformat(),),
        ).fetchone()[0]

    def _record(self, conn: sqlite3.Connection, trigger: Trigger, decision: Decision) -> None:
        conn.execute(
            "INSERT INTO retrain_triggers (recorded_at, data_time, kind, severity, outcome, "
            "reason, evidence) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                dt.datetime.now(dt.UTC).isoformat(),
                trigger.data_time.isoformat(),
                trigger.kind,
                trigger.severity,
                decision.outcome,
                decision.reason,
                json.dumps(trigger.evidence, default=str, sort_keys=True),
            ),
        )

    def history(self) -> list[dict]:
        """Every recorded trigger, oldest first."""
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM retrain_triggers ORDER BY id").fetchall()
        return [dict(r) | {"evidence": json.loads(r["evidence"])} for r in rows]
