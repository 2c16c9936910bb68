"""The retrain policy: which retrain triggers become retrains, and why the others do not.

Every trigger is recorded, accepted or suppressed, with its reason, in the append-only
``retrain_triggers`` table of the ledger. Time is the data's time (the day a trigger is about),
not the wall clock, so a replayed or simulated stretch of days is governed exactly as a live one.

- Hysteresis: a signal (drift, performance decay) fires when it reaches its ``enter`` level; once
  it has caused a retrain it stays disarmed until it falls back to its ``exit`` level, so a signal
  hovering at the threshold retrains once, not every day.
- Cooldown: no retrain within ``cooldown`` of the last accepted one, whatever asks.
- Budget: at most ``max_per_day`` accepted retrains per calendar day.
- Follow-up: a retrain at the moment a drift is found cannot learn it: with a label delay, its
  training set holds no labelled transaction of the drift. So an alarm (drift, or performance
  decay, whatever the retrain now was decided) also schedules a ``follow_up`` retrain for when
  the labels of the drift's first ``follow_up_days`` days have matured (the drift's first day +
  the label delay + ``follow_up_days`` - 1): a row with outcome ``scheduled``. On each new
  labels day the due follow-ups are put to the same bounds (cooldown, budget); one held back
  asks again on the next labels day, and lapses ``follow_up_lapse_days`` after it was due.
- Drift episode: from an alarm's first drift day until that day leaves the training window,
  retraining adapts (``evergreen.models.training.Adaptation``); ``drift_episode`` says which.

The ledger is append-only: a follow-up's life is its rows (scheduled, then accepted, suppressed
or lapsed ones naming it in ``evidence.schedule_id``), never an update.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass, field
from typing import Literal

from evergreen.settings import EvergreenSettings

TriggerKind = Literal["drift", "performance", "follow_up", "schedule", "fresh_data", "manual"]
# Signals measured on a scale with hysteresis; the others ask outright.
_MEASURED: tuple[str, ...] = ("drift", "performance")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS retrain_triggers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at TEXT NOT NULL,
    data_time TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity REAL,
    outcome TEXT NOT NULL,          -- accepted, suppressed, rearmed, scheduled, lapsed
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
    # One follow-up per entry: once that many of the drift's days are labelled (2: one to learn
    # from, one to judge on; 4: three to learn from).
    follow_up_days: tuple[int, ...] = (2, 4)
    follow_up_lapse_days: int = 7  # a follow-up still held back this long after it was due lapses

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
    # The first transaction day the alarm is about (a drift's start); the data day if None.
    drift_first_day: dt.date | None = None


@dataclass(frozen=True)
class Decision:
    """The policy's answer to one trigger."""

    accepted: bool
    reason: str
    outcome: str  # accepted, suppressed, rearmed, below_threshold
    follow_up: FollowUp | None = None  # the follow-up this alarm scheduled


@dataclass(frozen=True)
class FollowUp:
    """A scheduled follow-up retrain: due once the labels of the drift's first days matured."""

    schedule_id: int
    drift_first_day: dt.date
    due: dt.date
    alarm: str  # the kind of trigger that scheduled it

    def evidence(self) -> dict:
        return {
            "schedule_id": self.schedule_id,
            "drift_first_day": self.drift_first_day.isoformat(),
            "due": self.due.isoformat(),
            "alarm": self.alarm,
        }


@dataclass(frozen=True)
class DriftEpisode:
    """A confirmed drift whose first day is still inside the training window."""

    first_day: dt.date
    schedule_id: int
    alarm: str


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
        from evergreen.models.ledger import write

        def decide(conn) -> Decision:
            decision = self._decide(conn, trigger)
            if decision.outcome != "below_threshold":
                self._record(conn, trigger, decision)
            if self._is_alarm(trigger, decision):
                follow_up = self._schedule(conn, trigger)
                if follow_up is not None:
                    decision = Decision(**{**decision.__dict__, "follow_up": follow_up})
            return decision

        # One decision at a time across processes: the write lock is taken before reading;
        # recorded once even when PostgreSQL restarts in the middle (``write``).
        return write(self._connect, decide)

    @staticmethod
    def _is_alarm(trigger: Trigger, decision: Decision) -> bool:
        """A measured signal at its enter level that was armed: accepted now, or held back by
        the cooldown or the budget (a hysteresis suppression is the same alarm still on)."""
        if trigger.kind not in _MEASURED or decision.outcome not in ("accepted", "suppressed"):
            return False
        return decision.accepted or "hysteresis" not in decision.reason

    def _schedule(self, conn: sqlite3.Connection, trigger: Trigger) -> FollowUp | None:
        """Record this alarm's follow-ups (one per ``follow_up_days``), unless some are still
        pending; returns the first."""
        if self._pending(conn):
            return None
        first = trigger.drift_first_day or trigger.data_time.date()
        delay = self.settings.label_delay_days
        scheduled = []
        for days in self.policy.follow_up_days:
            due = first + dt.timedelta(days=delay + days - 1)
            reason = (
                f"{trigger.kind} alarm: the labels of the drift's first {days} day(s) from "
                f"{first} have matured by {due} (label delay {delay} days): retrain then"
            )
            evidence = {
                "drift_first_day": first.isoformat(),
                "due": due.isoformat(),
                "alarm": trigger.kind,
                "labelled_drift_days": days,
            }
            schedule = Trigger("follow_up", trigger.data_time, None, evidence)
            row_id = self._record(conn, schedule, Decision(False, reason, "scheduled"))
            scheduled.append(FollowUp(row_id, first, due, trigger.kind))
        return scheduled[0] if scheduled else None

    def _pending(self, conn: sqlite3.Connection) -> list[FollowUp]:
        """Scheduled follow-ups neither accepted nor lapsed yet, oldest first."""
        rows = conn.execute(
            "SELECT id, outcome, evidence FROM retrain_triggers WHERE kind = 'follow_up' "
            "ORDER BY id"
        ).fetchall()
        closed = {
            json.loads(r["evidence"]).get("schedule_id")
            for r in rows
            if r["outcome"] in ("accepted", "lapsed")
        }
        pending = []
        for r in rows:
            if r["outcome"] != "scheduled" or r["id"] in closed:
                continue
            evidence = json.loads(r["evidence"])
            pending.append(
                FollowUp(
                    r["id"],
                    dt.date.fromisoformat(evidence["drift_first_day"]),
                    dt.date.fromisoformat(evidence["due"]),
                    evidence["alarm"],
                )
            )
        return pending

    def due_follow_ups(self, labels_day: dt.date) -> list[FollowUp]:
        """Pending follow-ups due by ``labels_day`` (the newest labels loaded); one more than
        ``follow_up_lapse_days`` past due is recorded as lapsed instead."""
        from evergreen.models.ledger import write

        def lapse_or_keep(conn) -> list[FollowUp]:
            due = []
            for follow_up in self._pending(conn):
                if follow_up.due > labels_day:
                    continue
                late = (labels_day - follow_up.due).days
                if late > self.policy.follow_up_lapse_days:
                    reason = (
                        f"lapsed: due {follow_up.due}, still held back {late} days later "
                        f"(more than {self.policy.follow_up_lapse_days})"
                    )
                    evidence = follow_up.evidence()
                    lapsed = Trigger("follow_up", _midnight(labels_day), None, evidence)
                    self._record(conn, lapsed, Decision(False, reason, "lapsed"))
                    continue
                due.append(follow_up)
            return due

        return write(self._connect, lapse_or_keep)

    def drift_episode(self, cutoff: dt.date) -> DriftEpisode | None:
        """The newest confirmed drift (a scheduled follow-up) on or before ``cutoff`` whose
        first day is still inside the training window of ``cutoff``; None when there is none."""
        s = self.settings
        # The training set's first transaction day (``TrainingWindow.ending_at``).
        window_first = cutoff - dt.timedelta(days=s.label_delay_days + s.training_window_days - 1)
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, evidence FROM retrain_triggers WHERE kind = 'follow_up' "
                "AND outcome = 'scheduled' AND substr(data_time, 1, 10) <= ? ORDER BY id DESC",
                (cutoff.isoformat(),),
            ).fetchall()
        for row in rows:
            evidence = json.loads(row["evidence"])
            first = dt.date.fromisoformat(evidence["drift_first_day"])
            if window_first <= first <= cutoff:
                return DriftEpisode(first, row["id"], evidence["alarm"])
        return None

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

    def _record(self, conn: sqlite3.Connection, trigger: Trigger, decision: Decision) -> int:
        cursor = conn.execute(
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
        return int(cursor.lastrowid)

    def history(self) -> list[dict]:
        """Every recorded trigger, oldest first."""
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM retrain_triggers ORDER BY id").fetchall()
        return [dict(r) | {"evidence": json.loads(r["evidence"])} for r in rows]


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def training_adaptation(settings: EvergreenSettings, cutoff: dt.date):
    """How the retrain of ``cutoff`` trains: adapted to the confirmed drift whose first day is
    inside its training window (``RetrainGovernor.drift_episode``), else the plain time split
    (``evergreen.models.training.Adaptation``)."""
    from evergreen.models.training import Adaptation

    episode = RetrainGovernor(settings).drift_episode(cutoff)
    if episode is None:
        return Adaptation.standard(settings.evaluation_days, settings.validation_days)
    return Adaptation.for_drift(
        episode.first_day,
        settings.drift_evaluation_days,
        settings.drift_validation_share,
        settings.drift_recent_weight,
        reason=f"drift confirmed from {episode.first_day} ({episode.alarm} alarm, follow-up "
        f"#{episode.schedule_id}): newest {settings.drift_evaluation_days} day(s) held out, "
        f"validation on {settings.drift_validation_share:.0%} of customers, days from "
        f"{episode.first_day} weighted x{settings.drift_recent_weight:g}",
    )
