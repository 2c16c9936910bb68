"""Data-to-serving latency: a new day lands -> a model trained on it serves all traffic.

``run_serving_latency``: the demo's own machinery (``DemoRun``: simulate, history, first model
behind the router, a heartbeat load through it) brings up a serving champion; then one new day
lands and the loop's stages are timed: the headless daemon tick (landing sensor ingests the
day, automation refreshes the feature tables, the online store and ``live_predictions``), the
``retrain`` job on the new day (training set, candidate, evaluation, gate) and the ``deploy``
job (bento, infra validation, canary), until ``serving_status`` shows the new model at 100 %.

``run_data_stages_1m``: the stages whose cost grows with volume, at about 1M transactions a
day: simulating the history, ingesting one new day, its two feature tables, and the training
set of one day's labelled transactions through the FeatureService.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from evergreen.settings import EvergreenSettings


class Stopwatch:
    """Seconds per named stage, in order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def time(self, name: str, fn, *args, **kwargs):
        began = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[name] = round(time.perf_counter() - began, 2)


def _serving_weight(settings: EvergreenSettings, tag: str) -> int:
    """The weight (percent) of traffic the revisions serving ``tag`` get now."""
    from evergreen.rollout.status import serving_status

    revisions = serving_status(settings)["revisions"]
    return sum(r["weight"] for r in revisions if r["model_version"] == tag)


def _wait_full_traffic(settings: EvergreenSettings, tag: str, timeout_s: float = 120.0) -> int:
    deadline = time.monotonic() + timeout_s
    while (weight := _serving_weight(settings, tag)) < 100 and time.monotonic() < deadline:
        time.sleep(0.2)
    return weight


def _require(run, what: str) -> None:
    if not run.success:
        checks = "; ".join(f"{k}: {v}" for k, v in run.failed_checks.items())
        raise RuntimeError(f"{what} failed (run {run.run_id}): {checks}")


def _retrain(driver, cutoff: dt.date, settings: EvergreenSettings) -> tuple[str, str]:
    """Run the retrain job; the new model's tag and the gate's verdict. A candidate the gate
    keeps as challenger (as good within noise, lower AP) is promoted by hand, as an operator
    would with ``evergreen promote``, so the deploy still has a new model to roll out."""
    from evergreen.models.ledger import ModelStatus
    from evergreen.models.registry import ModelRegistry

    run = driver.run_job("retrain", cutoff.isoformat(), source="bench: new day")
    registry = ModelRegistry(settings)
    mine = [r for r in registry.records() if r.cutoff == cutoff.isoformat()]
    if not mine:
        _require(run, "retrain")
        raise RuntimeError("retrain registered no model")
    record = mine[0]
    verdict = record.status.value
    if record.status is ModelStatus.CHALLENGER:
        registry.set_status(
            record.tag, ModelStatus.CHAMPION, actor="bench", reason="latency benchmark"
        )
        verdict = "challenger (promoted by hand)"
    elif record.status is not ModelStatus.CHAMPION:
        raise RuntimeError(f"the gate made {record.tag} {verdict}; nothing new to deploy")
    return record.tag, verdict


def run_serving_latency(settings: EvergreenSettings, plan) -> dict:
    """Bring the demo up to a serving champion, land one day, time it to a new model at 100 %."""
    from dagster import DagsterInstance
    from rich.console import Console

    from evergreen.demo.run import reset_state
    from evergreen.demo.steps import DemoRun
    from evergreen.instance import ensure_instance

    reset_state(settings)
    ensure_instance(settings)
    run = DemoRun(settings, plan, DagsterInstance.get(), Console(quiet=True))
    setup, stages = Stopwatch(), Stopwatch()
    try:
        setup.time("simulate", run.simulate)
        setup.time("history", run.history)
        setup.time("first_model", run.first_model)
        # Only the landing sensor and automation: the drift, performance and floor sensors
        # would ask for retrains of their own, and the measured retrain is the one below.
        run.driver.sensors = [s for s in run.driver.sensors if s.name == "landing_zone_sensor"]
        day = run.world.day(plan.history_days)
        run.world.release(day)
        began = time.perf_counter()
        runs = stages.time("ingest_features", run.driver.tick)
        for r in runs:
            _require(r, f"{r.source} {r.assets} {r.partition}")
        tag, verdict = stages.time("retrain", _retrain, run.driver, day, settings)
        deploy = stages.time(
            "deploy", run.driver.run_job, "deploy", None, plan.deploy_config("canary"), "bench"
        )
        _require(deploy, "deploy")
        weight = stages.time("until_full_traffic", _wait_full_traffic, settings, tag)
        total = time.perf_counter() - began
        samples = run.heartbeat.stop() if run.heartbeat else []
        failed = len(run.heartbeat.failed(samples)) if run.heartbeat else 0
    finally:
        _stop_serving(settings)
    rows = _day_rows(settings, day)
    out = {f"latency_10k_{k}_s": v for k, v in stages.seconds.items()}
    out |= {f"latency_10k_setup_{k}_s": v for k, v in setup.seconds.items()}
    return out | {
        "latency_10k_total_s": round(total, 2),
        "latency_10k_tx_per_day": rows,
        "latency_10k_tick_runs": len(runs),
        "latency_10k_new_model_weight_pct": weight,
        "latency_10k_gate_verdict": verdict,
        "latency_10k_heartbeat_requests": len(samples),
        "latency_10k_heartbeat_failed": failed,
    }


def _stop_serving(settings: EvergreenSettings) -> None:
    from evergreen.rollout.controller import RolloutController

    if settings.serving_dir.exists():
        RolloutController(settings).stop()


def _day_rows(settings: EvergreenSettings, day: dt.date) -> int:
    from evergreen.warehouse import warehouse

    with warehouse(settings, read_only=True) as conn:
        sql = "SELECT count(*) FROM raw_transactions WHERE partition_date = ?"
        return conn.execute(sql, [day]).fetchone()[0]


def run_data_stages_1m(home: Path, customers: int, terminals: int, history_days: int) -> dict:
    """Simulate ``history_days`` days, ingest all but the last; then time the last day's
    ingest, its feature tables, and one day's training set through the FeatureService."""
    from loop_drift import compute_features, model_inputs

    from evergreen.features.feast_client import apply_definitions
    from evergreen.features.training_set import TrainingWindow
    from evergreen.ingest.partition import ingest_partition
    from evergreen.simulator import SimulatorConfig, simulate

    settings = EvergreenSettings(home=home).ensure_dirs()
    start, delay = settings.start_date, settings.label_delay_days
    days = [start + dt.timedelta(days=i) for i in range(history_days)]
    cfg = SimulatorConfig(
        customers=customers,
        terminals=terminals,
        start=start,
        days=history_days,
        seed=settings.seed,
        label_delay_days=delay,
    )
    watch = Stopwatch()
    watch.time("simulate_history", simulate, cfg, settings.landing_dir)
    new = days[-1]
    for d in days[:-1]:
        for feed in ("transactions", "labels"):
            ingest_partition(settings, feed, d)
    # The one-day training window: transactions of (new - delay), labelled by ``new``; the
    # point-in-time join reads the features of the day before them.
    window = TrainingWindow.ending_at(new, 1, delay)
    compute_features(settings, [window.first_day - dt.timedelta(days=1)])
    apply_definitions(settings)

    def ingest_new_day():
        for feed in ("transactions", "labels"):
            ingest_partition(settings, feed, new)

    watch.time("ingest_day", ingest_new_day)
    watch.time("features_day", compute_features, settings, [new])
    frame = watch.time("training_set_day", model_inputs, settings, window)
    rows = _day_rows(settings, new)
    out = {f"data_1m_{k}_s": v for k, v in watch.seconds.items()}
    return out | {
        "data_1m_simulate_per_day_s": round(watch.seconds["simulate_history"] / history_days, 2),
        "data_1m_tx_per_day": rows,
        "data_1m_training_set_rows": len(frame),
        "data_1m_history_days": history_days,
        "data_1m_stages_total_s": round(
            sum(watch.seconds[k] for k in ("ingest_day", "features_day", "training_set_day")), 2
        ),
    }
