"""How the loop recovers from a drift, on matured labels: per transaction day, the average
precision of what served, of a model frozen at the start, and of an oracle retrained every
day on all labels known that day; the recovery days; the loop's events; and a plot of it all.

- served: the logged scores (the router's answers), one per transaction.
- frozen: the first champion, scored offline on exactly the features serving logged.
- oracle (``write_oracle_scores``): for day t, CatBoost trained on the whole training window
  of cut-off t - 1 (every label landed before day t; no held-out days, validation on a share
  of customers), scored on day t's logged features. It is what daily retraining with no gate,
  no canary and no delay beyond the labels' own would serve: the ceiling the loop chases.
  Its scores are kept in ``reports/monitoring/oracle_scores.parquet`` (one training per day is
  a benchmark's or the demo's cost, never a monitoring refresh's).
- recovery days: from the drift's first day to the first day from which served AP stays at or
  above ``RECOVERY_LEVEL`` of the oracle's on every later day.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evergreen.settings import EvergreenSettings

RECOVERY_LEVEL = 0.9
ORACLE_PARAMS = {"iterations": 250, "learning_rate": 0.12}
ORACLE_VALIDATION_SHARE = 0.2
COLUMNS = ["day", "rows", "frauds", "served_ap", "frozen_ap", "oracle_ap", "served_by"]


def oracle_path(settings: EvergreenSettings) -> Path:
    return settings.reports_dir / "monitoring" / "oracle_scores.parquet"


def first_champion(settings: EvergreenSettings) -> str | None:
    """The first model ever crowned: the model frozen at the start."""
    from evergreen.models.ledger import ModelStatus
    from evergreen.models.registry import ModelRegistry

    for event in ModelRegistry(settings).history():
        if event.status is ModelStatus.CHAMPION:
            return event.tag
    return None


def matured_day_rows(settings: EvergreenSettings, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Logged predictions of ``first..last`` whose labels matured, one per transaction."""
    from evergreen.loop.live_data import matured_predictions, newest_label_day
    from evergreen.warehouse import warehouse

    with warehouse(settings, read_only=True) as conn:
        labels_by = newest_label_day(conn) or settings.start_date
        frame = matured_predictions(conn, first, last, labels_by, served_only=True)
    frame["day"] = pd.to_datetime(frame["partition_date"]).dt.date
    return frame


def oracle_model(settings: EvergreenSettings, cutoff: dt.date, progress=None):
    """The oracle of the day after ``cutoff``: every labelled transaction of its training
    window, none held out (see the module's docstring)."""
    from evergreen.features.feast_client import feature_store, fraud_feature_service
    from evergreen.features.training_set import (
        TrainingWindow,
        build_training_set,
        labelled_transactions,
    )
    from evergreen.models.training import train_candidate
    from evergreen.warehouse import warehouse

    path = settings.training_set_path(cutoff)
    if path.exists():
        frame = pd.read_parquet(path)
    else:
        window = TrainingWindow.ending_at(
            cutoff, settings.training_window_days, settings.label_delay_days
        )
        store = feature_store(settings)
        service = fraud_feature_service(store)
        with warehouse(settings, read_only=True) as conn:
            entities = labelled_transactions(conn, window)
            frame = build_training_set(store, entities, service, warehouse=conn).to_pandas()
    bucket = pd.util.hash_pandas_object(frame["customer_id"], index=False).to_numpy() % 1000
    validating = bucket < round(ORACLE_VALIDATION_SHARE * 1000)
    return train_candidate(
        frame[~validating], frame[validating], seed=settings.seed, params=ORACLE_PARAMS
    )


def write_oracle_scores(
    settings: EvergreenSettings, first: dt.date, last: dt.date, progress=None
) -> Path:
    """Train the oracle of each day of ``first..last`` with matured logged rows and keep its
    scores of that day's rows (days already kept are not trained again)."""
    path = oracle_path(settings)
    kept = pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=["transaction_id"])
    rows = matured_day_rows(settings, first, last)
    done = set(pd.to_datetime(kept["day"]).dt.date) if len(kept) else set()
    parts = [kept] if len(kept) else []
    for day, part in rows.groupby("day", sort=True):
        if day in done or part["label"].nunique() < 2:
            continue
        model = oracle_model(settings, day - dt.timedelta(days=1))
        parts.append(
            pd.DataFrame(
                {
                    "transaction_id": part["transaction_id"].to_numpy(),
                    "day": pd.Timestamp(day),
                    "oracle_score": model.predict_proba(part),
                }
            )
        )
        if progress is not None:
            progress(day)
    path.parent.mkdir(parents=True, exist_ok=True)
    if parts:
        pd.concat(parts, ignore_index=True).to_parquet(path, index=False)
    return path


def daily_recovery(
    settings: EvergreenSettings, first: dt.date, last: dt.date, frozen_tag: str | None = None
) -> pd.DataFrame:
    """Per matured transaction day of ``first..last`` (``COLUMNS``): AP served, frozen and
    oracle (None where the oracle was not computed or the day holds no fraud)."""
    from evergreen.models.registry import ModelRegistry

    rows = matured_day_rows(settings, first, last)
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    frozen_tag = frozen_tag or first_champion(settings)
    if frozen_tag:
        rows["frozen_score"] = ModelRegistry(settings).load(frozen_tag).predict_proba(rows)
    path = oracle_path(settings)
    if path.exists():
        oracle = pd.read_parquet(path, columns=["transaction_id", "oracle_score"])
        rows = rows.merge(oracle.drop_duplicates("transaction_id"), "left", "transaction_id")
    out = []
    for day, part in rows.groupby("day", sort=True):
        counts = part["model_version"].value_counts()
        out.append(
            {
                "day": day,
                "rows": len(part),
                "frauds": int(part["label"].sum()),
                "served_ap": _ap(part, "fraud_probability"),
                "frozen_ap": _ap(part, "frozen_score"),
                "oracle_ap": _ap(part, "oracle_score"),
                "served_by": ", ".join(f"{t.split(':')[-1][:8]} ({n})" for t, n in counts.items()),
            }
        )
    return pd.DataFrame(out, columns=COLUMNS)


def _ap(part: pd.DataFrame, column: str) -> float | None:
    from sklearn.metrics import average_precision_score

    if column not in part or part[column].isna().any() or part["label"].nunique() < 2:
        return None
    return float(average_precision_score(part["label"], part[column]))


def recovery_days(frame: pd.DataFrame, drift_day: dt.date, level: float = RECOVERY_LEVEL):
    """Days from ``drift_day`` to the first day from which served AP is at least ``level`` x
    the oracle's on every later judged day; None when it never gets there (or no oracle)."""
    drift = frame[(frame["day"] >= drift_day) & frame["oracle_ap"].notna()]
    drift = drift[drift["served_ap"].notna()].sort_values("day")
    if drift.empty:
        return None
    ok = (drift["served_ap"] >= level * drift["oracle_ap"]).to_numpy()
    # The first index after which every day is ok.
    bad = np.flatnonzero(~ok)
    start = 0 if len(bad) == 0 else bad[-1] + 1
    if start >= len(drift):
        return None
    return (drift["day"].iloc[start] - drift_day).days


def mean_ap(frame: pd.DataFrame, column: str, first: dt.date, last: dt.date) -> float | None:
    """The mean of the daily APs of ``column`` over ``first..last`` (days with a value)."""
    part = frame[(frame["day"] >= first) & (frame["day"] <= last)][column].dropna()
    return float(part.mean()) if len(part) else None


def _accepted_follow_up_days(settings: EvergreenSettings) -> list[dt.date]:
    from evergreen.loop.retrain_policy import RetrainGovernor

    return sorted(
        {
            dt.date.fromisoformat(h["data_time"][:10])
            for h in RetrainGovernor(settings).history()
            if h["kind"] == "follow_up" and h["outcome"] == "accepted"
        }
    )


def judged_follow_ups(settings: EvergreenSettings) -> list[tuple[dt.date, str]]:
    """Accepted follow-up retrains whose candidate the gate judged (promoted, kept as a
    challenger or rejected): (the follow-up's data day, its cut-off, and the model's tag),
    oldest first. From the first of them on, what serves is the loop's choice made with the
    drift's labels: the follow-up's model, or the champion it did not beat (a decay retrain
    may have learnt the drift already)."""
    from evergreen.models.ledger import ModelStatus
    from evergreen.models.registry import ModelRegistry

    records = ModelRegistry(settings).records()
    found = []
    for day in _accepted_follow_up_days(settings):
        judged = [
            r.tag
            for r in records
            if r.cutoff == day.isoformat() and r.status is not ModelStatus.CANDIDATE
        ]
        if judged:
            found.append((day, judged[0]))
    return found


def served_follow_ups(settings: EvergreenSettings) -> list[tuple[dt.date, str]]:
    """Accepted follow-up retrains whose model went on to serve (the gate promoted it and a
    rollout put it in front of traffic): (the follow-up's data day, which is its cut-off, and
    the model's tag), oldest first. Served means it answered live payments whose labels have
    matured (``matured_served_rows``): a follow-up whose candidate the gate kept out is not
    one, nor one whose canary only saw its warm-ups and probes before it was rolled back."""
    from evergreen.loop.live_data import matured_served_rows
    from evergreen.models.registry import ModelRegistry
    from evergreen.warehouse import warehouse

    records = ModelRegistry(settings).records()
    found = []
    with warehouse(settings, read_only=True) as conn:
        for day in _accepted_follow_up_days(settings):
            tags = [r.tag for r in records if r.cutoff == day.isoformat()]
            served = [tag for tag in tags if matured_served_rows(conn, tag)]
            if served:
                found.append((day, served[0]))
    return found


@dataclass(frozen=True)
class LoopEvent:
    """Something the loop did, on the data day it is about."""

    day: dt.date
    kind: str  # alarm, follow-up scheduled, retrain, promotion, rollback
    text: str


def loop_events(settings: EvergreenSettings) -> list[LoopEvent]:
    """Alarms (drift or decay triggers at their enter level), follow-ups scheduled, retrains
    (accepted triggers), promotions (a model crowned, on its cut-off day) and rollbacks (on
    the day after the rolled-back model last served), oldest first."""
    from evergreen.loop.live_data import served_days
    from evergreen.loop.retrain_policy import RetrainGovernor
    from evergreen.models.ledger import ModelStatus
    from evergreen.models.registry import ModelRegistry
    from evergreen.warehouse import warehouse

    events = []
    for row in RetrainGovernor(settings).history():
        day = dt.datetime.fromisoformat(row["data_time"]).date()
        alarm = row["kind"] in ("drift", "performance") and row["outcome"] != "rearmed"
        if alarm and "hysteresis" not in row["reason"]:
            events.append(LoopEvent(day, "alarm", f"{row['kind']} {row['severity']:.2f}"))
        if row["outcome"] == "scheduled":
            events.append(LoopEvent(day, "follow-up scheduled", row["evidence"].get("due", "")))
        if row["outcome"] == "accepted":
            events.append(LoopEvent(day, "retrain", row["kind"]))
    registry = ModelRegistry(settings)
    history = registry.history()
    with warehouse(settings, read_only=True) as conn:
        for i, event in enumerate(history):
            if event.status is not ModelStatus.CHAMPION:
                continue
            if "rolled back" in event.reason or event.reason.startswith("rollback"):
                gone = [e.tag for e in history[i + 1 :] if e.status is ModelStatus.REJECTED]
                tag = gone[0] if gone else event.tag
                days = served_days(conn, tag)
                when = days[-1] + dt.timedelta(days=1) if days else None
                if when:
                    events.append(LoopEvent(when, "rollback", tag))
            elif not event.reason.startswith("confirmed"):
                cutoff = registry.get(event.tag).cutoff
                if cutoff:
                    events.append(LoopEvent(dt.date.fromisoformat(cutoff), "promotion", event.tag))
    return sorted(events, key=lambda e: (e.day, e.kind))


_MARKS = {
    "alarm": ("v", "tab:red"),
    "follow-up scheduled": ("4", "tab:purple"),
    "retrain": ("^", "tab:orange"),
    "promotion": ("*", "tab:green"),
    "rollback": ("X", "black"),
}


def plot_recovery(
    frame: pd.DataFrame, events: list[LoopEvent], drift_day: dt.date | None, path: Path
) -> Path:
    """AP per day served vs frozen vs oracle, the drift's start, and the loop's events as
    markers along the bottom, as a PNG."""
    from evergreen.loop.monitoring_history import _date_axis, _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 5))
    try:
        if frame.empty:
            ax.text(0.5, 0.5, "no matured labels yet", ha="center", transform=ax.transAxes)
        days = pd.to_datetime(frame["day"])
        for column, style, label in (
            ("served_ap", "-o", "served (the loop)"),
            ("frozen_ap", "--s", "frozen at the start"),
            ("oracle_ap", ":^", "oracle (retrained daily on all labels known)"),
        ):
            values = frame[column].astype(float)
            if values.notna().any():
                ax.plot(days, values, style, label=label, markersize=4)
        if drift_day is not None:
            ax.axvline(pd.Timestamp(drift_day), color="tab:red", linestyle="--", linewidth=1)
            ax.text(pd.Timestamp(drift_day), 1.0, " drift starts", color="tab:red", va="top")
        lanes = {kind: i for i, kind in enumerate(_MARKS)}
        for kind, (marker, colour) in _MARKS.items():
            when = [pd.Timestamp(e.day) for e in events if e.kind == kind]
            if when:
                y = [0.02 + 0.035 * lanes[kind]] * len(when)
                ax.scatter(when, y, marker=marker, color=colour, s=60, label=kind, zorder=4)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("transaction day (labels matured)")
        ax.set_ylabel("average precision (one day)")
        ax.set_title("AP per day: served vs frozen vs oracle, and what the loop did")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4, fontsize="small")
        if not frame.empty:
            _date_axis(ax)
        return _save(fig, path)
    finally:
        plt.close(fig)


def summary_json(frame: pd.DataFrame) -> str:
    """The per-day frame as JSON rows (dates as ISO strings)."""
    return json.dumps(
        [{**r, "day": r["day"].isoformat()} for r in frame.to_dict("records")], default=str
    )
