"""Drift detection over a long stationary stretch, then a drift: the loop's own monitor and policy.

One simulated world: a warm-up (so the 7- and 30-day features have settled), a training window
(the reference: its training set is written where the drift monitor looks for it, and a small
CatBoost model trained on it is the champion), then ``stationary_days`` live days, then
``drift_days`` days of the simulator's concept + covariate drift. Every live day's transactions
are joined to their features point in time by the training-set builder (Feast, the same
FeatureService serving reads), scored by the champion, written to the prediction log with the
serving writer, loaded into ``live_predictions`` and judged by ``prediction_drift``; its
severity goes to ``RetrainGovernor`` (default ``RetrainPolicy``) as the drift sensor does.

No retrain is run: the reference stays the first model's training set all along, so an accepted
false alarm would (by hysteresis) keep the signal disarmed, which the figures would show.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evergreen.settings import EvergreenSettings

_Tx = namedtuple(
    "_Tx", "transaction_id customer_id terminal_id amount tx_datetime region channel card_type"
)
_Scored = namedtuple(
    "_Scored", "request_id model_version fraud_probability threshold decision features_missing"
)


@dataclass(frozen=True)
class DriftPlan:
    """Sizes of the drift world (days counted from the simulator's start)."""

    customers: int = 5000
    terminals: int = 10000
    warmup_days: int = 31
    window_days: int = 28
    stationary_days: int = 60
    drift_days: int = 10
    label_delay_days: int = 7
    seed: int = 0

    @classmethod
    def quick(cls) -> DriftPlan:
        return cls(
            customers=300,
            terminals=600,
            warmup_days=2,
            window_days=12,
            stationary_days=2,
            drift_days=1,
            label_delay_days=2,
        )


def _day(settings: EvergreenSettings, i: int) -> dt.date:
    return settings.start_date + dt.timedelta(days=i)


class DriftWorld:
    """The simulated home and its timeline."""

    def __init__(self, home: Path, plan: DriftPlan):
        self.plan = plan
        self.settings = EvergreenSettings(
            home=home,
            training_window_days=plan.window_days,
            label_delay_days=plan.label_delay_days,
            seed=plan.seed,
        ).ensure_dirs()
        s, p = self.settings, plan
        last_window_day = p.warmup_days + p.window_days - 1
        self.cutoff = _day(s, last_window_day + s.label_delay_days)
        self.live = [
            self.cutoff + dt.timedelta(days=k)
            for k in range(1, p.stationary_days + p.drift_days + 1)
        ]
        self.drift_start = self.live[p.stationary_days]
        self.days = (self.live[-1] - s.start_date).days + 1 + s.label_delay_days

    def build(self) -> dict[str, float]:
        """Simulate, ingest and compute features of every day; returns seconds per stage."""
        from evergreen.ingest.partition import ingest_partition
        from evergreen.simulator import SimulatorConfig, simulate

        s, seconds = self.settings, {}
        cfg = SimulatorConfig(
            customers=self.plan.customers,
            terminals=self.plan.terminals,
            start=s.start_date,
            days=self.days,
            seed=self.plan.seed,
            label_delay_days=s.label_delay_days,
            concept_drift_start=self.drift_start,
            covariate_drift_start=self.drift_start,
        )
        began = time.perf_counter()
        simulate(cfg, s.landing_dir)
        seconds["simulate"] = time.perf_counter() - began
        began = time.perf_counter()
        for i in range(self.days):
            for feed in ("transactions", "labels"):
                ingest_partition(s, feed, _day(s, i))
        seconds["ingest"] = time.perf_counter() - began
        began = time.perf_counter()
        compute_features(s, [_day(s, i) for i in range(self.days)])
        seconds["features"] = time.perf_counter() - began
        return seconds


def compute_features(settings: EvergreenSettings, days: list[dt.date]) -> None:
    """Both feature tables' partitions of ``days``, as the feature assets write them."""
    from evergreen.features.customer_spending import CUSTOMER_SPENDING, customer_spending_rows
    from evergreen.features.tables import write_partition
    from evergreen.features.terminal_risk import TERMINAL_RISK, terminal_risk_rows
    from evergreen.warehouse import warehouse

    created = dt.datetime.now(dt.UTC)
    with warehouse(settings, read_only=True) as conn:
        for d in days:
            rows = customer_spending_rows(conn, d, created)
            write_partition(CUSTOMER_SPENDING, rows, settings.features_dir, d)
            rows = terminal_risk_rows(conn, d, created, settings.label_lookback_days)
            write_partition(TERMINAL_RISK, rows, settings.features_dir, d)


def model_inputs(settings: EvergreenSettings, window) -> pd.DataFrame:
    """Transactions of a window with their features as of each one (the training-set builder)."""
    from evergreen.features.feast_client import feature_store, fraud_feature_service
    from evergreen.features.training_set import build_training_set, labelled_transactions
    from evergreen.warehouse import warehouse

    store = feature_store(settings)
    with warehouse(settings, read_only=True) as conn:
        entities = labelled_transactions(conn, window)
        table = build_training_set(store, entities, fraud_feature_service(store), warehouse=conn)
    return table.to_pandas()


def crown_reference_model(world: DriftWorld) -> tuple[str, pd.DataFrame]:
    """Write the reference training set and make a small model trained on it the champion."""
    from evergreen.features.training_set import TrainingWindow
    from evergreen.models.ledger import ModelStatus
    from evergreen.models.registry import ModelRegistry
    from evergreen.models.training import Provenance, split_by_time, train_candidate

    s = world.settings
    window = TrainingWindow.ending_at(world.cutoff, s.training_window_days, s.label_delay_days)
    frame = model_inputs(s, window)
    path = s.training_set_path(world.cutoff)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path)
    split = split_by_time(frame, s.evaluation_days, s.validation_days)
    model = train_candidate(split.train, split.validation, seed=s.seed, params={"iterations": 60})
    model.provenance = Provenance(cutoff=world.cutoff.isoformat(), data_fingerprint="bench")
    registry = ModelRegistry(s)
    tag = registry.register(model, actor="bench", reason="drift benchmark reference").tag
    registry.set_status(tag, ModelStatus.CHAMPION, actor="bench", reason="reference model")
    return tag, frame


def log_day(settings: EvergreenSettings, frame: pd.DataFrame, tag: str, day: dt.date) -> int:
    """Score the day's rows, append them to the prediction log as a replica does, and load the
    day into ``live_predictions``; returns the rows loaded."""
    from evergreen.loop.live_data import LOGGED_FEATURES
    from evergreen.models.registry import ModelRegistry
    from evergreen.serving.live_predictions import load_day
    from evergreen.serving.prediction_log import PredictionLog, prediction_records
    from evergreen.warehouse import warehouse

    model = ModelRegistry(settings).load(tag)
    scores = model.predict_proba(frame)
    txs = [
        _Tx(
            int(r.transaction_id),
            int(r.customer_id),
            int(r.terminal_id),
            float(r.amount),
            r.tx_datetime.to_pydatetime(),
            str(r.region),
            str(r.channel),
            str(r.card_type),
        )
        for r in frame.itertuples(index=False)
    ]
    scored = [
        _Scored(
            f"bench-{tx.transaction_id}",
            tag,
            float(p),
            model.threshold,
            bool(p >= model.threshold),
            [],
        )
        for tx, p in zip(txs, scores, strict=True)
    ]
    features = {n: frame[n].astype(float).tolist() for n in LOGGED_FEATURES}
    log = PredictionLog(settings.predictions_dir, replica="bench-replica")
    log.append(prediction_records(txs, features, scored, dt.datetime.now(dt.UTC)))
    log.close()
    with warehouse(settings) as conn:
        return load_day(conn, settings, day).rows


def judge_days(world: DriftWorld, tag: str) -> list[dict]:
    """Each live day: logged, judged by the drift monitor, put to the retrain policy."""
    from evergreen.features.training_set import TrainingWindow
    from evergreen.loop.monitors import day_start, prediction_drift
    from evergreen.loop.retrain_policy import RetrainGovernor, Trigger

    s = world.settings
    window = TrainingWindow(
        world.live[0], world.live[-1], world.live[-1] + dt.timedelta(days=s.label_delay_days)
    )
    frame = model_inputs(s, window)
    tx_days = frame["tx_datetime"].dt.tz_convert("UTC").dt.date
    governor = RetrainGovernor(s)
    out = []
    for day in world.live:
        rows = log_day(s, frame[tx_days == day], tag, day)
        began = time.perf_counter()
        finding = prediction_drift(s, day)
        check_s = time.perf_counter() - began
        decision = None
        if finding.severity is not None:
            trigger = Trigger("drift", day_start(day), finding.severity, finding.evidence())
            decision = governor.consider(trigger)
        out.append(
            {
                "day": day,
                "drifted": day >= world.drift_start,
                "rows": rows,
                "severity": finding.severity,
                "reason": finding.reason,
                "check_s": check_s,
                "outcome": decision.outcome if decision else "not judged",
            }
        )
    return out


def summarize(world: DriftWorld, days: list[dict]) -> dict[str, float | int | None]:
    """The figures: false alarms and drifted share on stationary days, detection delay."""
    from evergreen.loop.retrain_policy import RetrainPolicy

    enter = RetrainPolicy()
    stationary = [d for d in days if not d["drifted"]]
    drifted = [d for d in days if d["drifted"]]
    shares = [d["severity"] for d in stationary if d["severity"] is not None]
    accepted = [d["day"] for d in drifted if d["outcome"] == "accepted"]
    over = [d["day"] for d in drifted if (d["severity"] or 0) >= enter.drift_enter]

    def delay(found: list[dt.date]) -> int | None:
        return (found[0] - world.drift_start).days if found else None

    return {
        "drift_stationary_days": len(stationary),
        "drift_days_after_start": len(drifted),
        "drift_false_alarms_count": sum(d["outcome"] == "accepted" for d in stationary),
        "drift_stationary_days_over_enter_count": sum(
            (d["severity"] or 0) >= enter.drift_enter for d in stationary
        ),
        "drift_stationary_share_median": statistics.median(shares) if shares else None,
        "drift_stationary_share_max": max(shares) if shares else None,
        "drift_after_start_share_median": statistics.median(
            [d["severity"] for d in drifted if d["severity"] is not None] or [0.0]
        ),
        "drift_detection_delay_days": delay(accepted),
        "drift_first_over_enter_delay_days": delay(over),
        "drift_live_rows_per_day_median": int(statistics.median(d["rows"] for d in days)),
        "drift_check_s_median": round(statistics.median(d["check_s"] for d in days), 2),
    }


def run_drift_bench(home: Path, plan: DriftPlan) -> tuple[dict, list[dict]]:
    """Build the world, judge every live day; returns (figures, per-day rows)."""
    from evergreen.features.feast_client import apply_definitions

    world = DriftWorld(home, plan)
    seconds = world.build()
    apply_definitions(world.settings)
    tag, _ = crown_reference_model(world)
    began = time.perf_counter()
    days = judge_days(world, tag)
    seconds["judge"] = time.perf_counter() - began
    figures = summarize(world, days)
    figures["drift_world_days"] = world.days
    figures.update({f"drift_{k}_s": round(v, 2) for k, v in seconds.items()})
    return figures, days
