"""Label-delay-aware promotion: a champion promoted on the evidence of its cut-off is confirmed,
or rolled back by itself, once the labels of its first production days have matured.

The review compares the champion with the model it replaced (its predecessor) on the same
transactions: those the champion scored on its first ``promotion_watch_days`` served days
(more days while they hold fewer than ``monitor_min_frauds`` frauds), whose labels landed by
the newest label day. The champion's scores are the logged ones (what users got); the
predecessor's are computed now from the logged feature values, which are exactly the inputs
serving scored, so no feature store is read.

The decision is the gate's non-inferiority rule (``evergreen.models.gate``): a paired bootstrap
over customers of champion - predecessor, overall and per judged segment, for AUC and AP. Only
a CLEARLY worse champion (a whole interval below -margin) is rolled back; within noise it is
confirmed. Floors and calibration are not re-judged here: both models face the same live data.

Outcomes go to the ledger: a confirmation is a ``champion`` event with the numbers; a rollback
promotes the predecessor again (which retires the champion) and then marks the champion
``rejected``, both with the numbers. Each review is also a row of the append-only
``promotion_reviews`` table, so a champion is reviewed once per promotion.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from evergreen.loop.live_data import matured_predictions, served_days
from evergreen.models import ledger as ledger_db
from evergreen.models.gate import GatePolicy, decide
from evergreen.models.ledger import ModelStatus
from evergreen.models.registry import ModelRegistry
from evergreen.settings import EvergreenSettings

ACTOR = "sensor:promotion_watch"
CHAMPION_COL = "champion_score"
PREDECESSOR_COL = "predecessor_score"
Outcome = Literal["confirm", "roll_back", "wait", "not_reviewed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS promotion_reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at TEXT NOT NULL,
    tag TEXT NOT NULL,
    crowned_event_id INTEGER NOT NULL,
    predecessor TEXT,
    outcome TEXT NOT NULL,          -- confirm, roll_back, not_reviewed
    days TEXT NOT NULL,             -- JSON list of the production days judged
    reason TEXT NOT NULL,
    numbers TEXT NOT NULL           -- JSON
);
"""


@dataclass(frozen=True)
class Crowning:
    """The champion's current reign: the event that made it champion, and whom it replaced."""

    tag: str
    event_id: int
    predecessor: str | None

    @property
    def deploy_run_key(self) -> str:
        """One deploy per reign: a model crowned again after a rollback deploys again."""
        return f"deploy:{self.tag}:{self.event_id}"


def current_crowning(registry: ModelRegistry) -> Crowning | None:
    """The champion's crowning event (the first ``champion`` event of its current streak; a
    confirmation adds events, not reigns) and the champion before it, from the ledger."""
    champion = registry.champion()
    if champion is None:
        return None
    events = registry.history()
    crowned = None
    for event in events:
        if event.tag != champion.tag:
            continue
        if event.status is ModelStatus.CHAMPION and crowned is None:
            crowned = event
        elif event.status is not ModelStatus.CHAMPION:
            crowned = None
    if crowned is None:  # cannot happen: a champion's newest event is a champion event
        raise RuntimeError(f"the ledger has no champion event for the champion {champion.tag}")
    before = [
        e.tag
        for e in events
        if e.id < crowned.id and e.status is ModelStatus.CHAMPION and e.tag != champion.tag
    ]
    return Crowning(champion.tag, crowned.id, before[-1] if before else None)


@dataclass(frozen=True)
class PromotionReview:
    """The verdict on one reign: confirm, roll back, or wait (and why, with the numbers)."""

    crowning: Crowning
    outcome: Outcome
    reason: str
    days: list[str] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)


def _connect(settings: EvergreenSettings):
    return ledger_db.ledger(settings, _SCHEMA)


def reviews(settings: EvergreenSettings) -> list[dict]:
    """Every recorded review, oldest first."""
    with _connect(settings) as conn:
        rows = conn.execute("SELECT * FROM promotion_reviews ORDER BY id").fetchall()
    return [
        dict(r) | {"days": json.loads(r["days"]), "numbers": json.loads(r["numbers"])} for r in rows
    ]


def _reviewed(settings: EvergreenSettings, crowning: Crowning) -> bool:
    return any(
        r["tag"] == crowning.tag and r["crowned_event_id"] == crowning.event_id
        for r in reviews(settings)
    )


def review_champion(
    settings: EvergreenSettings,
    newest_label_day: dt.date,
    policy: GatePolicy | None = None,
) -> PromotionReview | None:
    """The review due for the current champion, or None (no champion, or already reviewed).
    Computes only; ``apply_review`` writes it."""
    registry = ModelRegistry(settings)
    crowning = current_crowning(registry)
    if crowning is None or _reviewed(settings, crowning):
        return None
    if crowning.predecessor is None:
        return PromotionReview(crowning, "not_reviewed", "the first champion: nothing to compare")
    if registry.get(crowning.predecessor).status is ModelStatus.REJECTED:
        why = f"restored after {crowning.predecessor} was rejected: not reviewed again"
        return PromotionReview(crowning, "not_reviewed", why)
    frame, days, waiting = _matured_window(settings, crowning.tag, newest_label_day)
    if waiting:
        return PromotionReview(crowning, "wait", waiting, days)
    predecessor = registry.load(crowning.predecessor)
    frame = frame.rename(columns={"fraud_probability": CHAMPION_COL})
    frame[PREDECESSOR_COL] = predecessor.predict_proba(frame)
    return _judge(crowning, frame, days, policy or GatePolicy(), settings.seed)


def _matured_window(
    settings: EvergreenSettings, tag: str, newest_label_day: dt.date
) -> tuple[pd.DataFrame, list[str], str]:
    """The champion's first served days with matured labels: at least ``promotion_watch_days``
    and enough frauds. Returns (rows, days, why it must wait or "")."""
    from evergreen.warehouse import warehouse

    k, delay = settings.promotion_watch_days, settings.label_delay_days
    with warehouse(settings, read_only=True) as conn:
        served = served_days(conn, tag)
        matured = [d for d in served if d + dt.timedelta(days=delay) <= newest_label_day]
        if len(matured) < k:
            why = (
                f"{len(matured)} of its first {k} production days have matured labels "
                f"(served on {len(served)} day(s); labels landed through {newest_label_day})"
            )
            return pd.DataFrame(), [d.isoformat() for d in matured], why
        for n in range(k, len(matured) + 1):
            frame = matured_predictions(conn, matured[0], matured[n - 1], newest_label_day, tag)
            if frame["label"].sum() >= settings.monitor_min_frauds:
                break
    days = [d.isoformat() for d in matured[:n]]
    frauds = int(frame["label"].sum())
    if frauds < settings.monitor_min_frauds:
        return frame, days, f"{frauds} matured frauds in {len(days)} production days, too few"
    return frame, days, ""


def _judge(
    crowning: Crowning, frame: pd.DataFrame, days: list[str], policy: GatePolicy, seed: int
) -> PromotionReview:
    verdict = decide(frame, CHAMPION_COL, PREDECESSOR_COL, policy, seed)
    worse = [r for r in verdict.rules if r.name.startswith("non_inferior") and not r.passed]
    ap = next(r for r in verdict.rules if r.name == "non_inferior_average_precision").numbers
    auc = next(r for r in verdict.rules if r.name == "non_inferior_roc_auc").numbers
    numbers = {
        "rows": len(frame),
        "frauds": int(frame["label"].sum()),
        "average_precision": ap,
        "roc_auc": auc,
        "failed_rules": [r.name for r in worse],
        "seed": seed,
    }
    where = (
        f"on its first {len(days)} production days ({days[0]}..{days[-1]}; {len(frame):,} "
        f"matured transactions, {numbers['frauds']} frauds), against {crowning.predecessor} "
        f"on the same transactions: AP {_delta(ap)}, ROC AUC {_delta(auc)}"
    )
    if worse:
        # The gate's own texts say "candidate" and "champion": here the champion and its
        # predecessor. The rule names say where it is worse; the numbers are in the review.
        failed = ", ".join(r.name for r in worse)
        why = f"clearly worse {where}; whole interval below -margin in: {failed}"
        return PromotionReview(crowning, "roll_back", why, days, numbers)
    return PromotionReview(crowning, "confirm", f"not worse {where}", days, numbers)


def _delta(numbers: dict) -> str:
    if numbers.get("delta") is None:
        return "undefined"
    return (
        f"{numbers['delta']:+.3f} (interval {numbers['ci_low']:+.3f} to "
        f"{numbers['ci_high']:+.3f}, margin {numbers['margin']})"
    )


def apply_review(settings: EvergreenSettings, review: PromotionReview, actor: str = ACTOR):
    """Write a review's outcome to the ledger; returns the status changes in words. A review
    that must wait writes nothing. Refuses (ValueError) if the champion changed meanwhile."""
    if review.outcome == "wait":
        return []
    registry = ModelRegistry(settings)
    now = current_crowning(registry)
    if now != review.crowning:
        raise ValueError(f"the champion changed since the review of {review.crowning.tag}")
    tag, previous = review.crowning.tag, review.crowning.predecessor
    changes = []
    if review.outcome == "confirm":
        registry.set_status(tag, ModelStatus.CHAMPION, actor, f"confirmed: {review.reason}")
        changes.append(f"{tag}: confirmed champion")
    elif review.outcome == "roll_back":
        reason = f"rolled back: {tag} was {review.reason}"
        registry.set_status(
            previous, ModelStatus.CHAMPION, actor, reason, demote_champion_to=ModelStatus.REJECTED
        )
        changes.append(f"{previous}: champion again; {tag}: rejected")
    _record(settings, review)
    return changes


def _record(settings: EvergreenSettings, review: PromotionReview) -> None:
    """Record the review once (``ledger.write``: also across a PostgreSQL restart)."""

    def insert(conn) -> None:
        conn.execute(
            "INSERT INTO promotion_reviews (recorded_at, tag, crowned_event_id, predecessor, "
            "outcome, days, reason, numbers) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ledger_db.now(),
                review.crowning.tag,
                review.crowning.event_id,
                review.crowning.predecessor,
                review.outcome,
                json.dumps(review.days),
                review.reason,
                json.dumps(review.numbers, default=str, sort_keys=True),
            ),
        )

    ledger_db.write(lambda: _connect(settings), insert)
