"""``make demo``: the whole loop, headless, on the embedded defaults.

A simulated bank's history is ingested, turned into features, a first model is trained, gated,
built and rolled out behind the router. Then new days arrive while a bounded load loop keeps
paying through the router: a concept and covariate drift starts, the sensors find it, the
retrain policy lets a retrain through, the gate decides and a canary rolls the winner out. The
sensors and automation conditions are the code location's own, evaluated in-process on the
same Dagster instance the UI reads (``evergreen.loop.driver``), so ``make ui`` shows it all.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from dataclasses import dataclass, field

from dagster import DagsterInstance
from rich.console import Console

from evergreen.instance import ensure_instance
from evergreen.settings import EvergreenSettings

DEMO_MARKER = ".evergreen-demo"


@dataclass(frozen=True)
class DemoPlan:
    """How big the simulated world is and how the live stretch goes."""

    customers: int = 1000
    terminals: int = 2000
    # 30 days for the 30-day windows to fill, then a 28-day training window: a shorter history
    # makes the first live days look drifted against a reference still warming up.
    history_days: int = 60
    live_days: int = 10
    drift_after: int = 3  # live days before the drift starts
    replay_per_day: int = 400
    replay_rate: float = 40.0
    heartbeat_rate: float = 5.0
    canary_steps: tuple[int, ...] = (25, 100)
    canary_step_seconds: float = 6.0
    # Settings (EVERGREEN_* variables) the plan needs unless the environment sets them: assets
    # read their settings from the environment, so the plan cannot pass them any other way.
    settings_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def quick(cls) -> DemoPlan:
        """The shortened loop the end-to-end test runs."""
        return cls(
            customers=300,
            terminals=600,
            history_days=14,
            live_days=3,
            drift_after=1,
            replay_per_day=120,
            canary_step_seconds=2.0,
            # 14 days of history: shorter label delay and windows, or no training set fits.
            settings_env={
                "EVERGREEN_LABEL_DELAY_DAYS": "3",
                "EVERGREEN_TRAINING_WINDOW_DAYS": "10",
                "EVERGREEN_EVALUATION_DAYS": "3",
                "EVERGREEN_VALIDATION_DAYS": "2",
            },
        )

    def deploy_config(self, strategy: str) -> dict:
        """Run config of the ``deploy`` job: one replica a revision, short analysis steps."""
        config = {
            "strategy": strategy,
            "canary_steps": list(self.canary_steps),
            "step_seconds": self.canary_step_seconds,
            "keep_previous_seconds": 2.0,
            "warmup_requests": 5,
            "replicas": 1,
        }
        return {"ops": {"deployment": {"config": config}}}


@dataclass
class DemoSummary:
    """What the demo did, for the closing table and the tests."""

    frozen_model: str = ""
    day_log: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    requests: int = 0
    scores: list = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    rollouts: dict[str, int] = field(default_factory=dict)
    triggers: dict[str, int] = field(default_factory=dict)


def reset_state(settings: EvergreenSettings) -> None:
    """Clear a previous demo's state; refuse to touch a home the demo did not make."""
    landing = settings.landing_dir
    if landing.exists() and any(landing.iterdir()) and not (settings.home / DEMO_MARKER).exists():
        raise SystemExit(
            f"{landing} holds data the demo did not create; set EVERGREEN_HOME to an "
            "empty folder to run the demo."
        )
    _stop_serving(settings)
    for path in (
        landing,
        settings.quarantine_dir,
        settings.warehouse_path.parent,
        settings.features_dir,
        settings.feast_dir,
        settings.training_sets_dir,
        settings.registry_dir,
        settings.reports_dir,
        settings.predictions_dir,
        settings.serving_dir,
        settings.home / "demo",
        settings.dagster_home,
    ):
        shutil.rmtree(path, ignore_errors=True)
    settings.ensure_dirs()
    (settings.home / DEMO_MARKER).write_text("made by `evergreen demo`\n")


def _stop_serving(settings: EvergreenSettings) -> None:
    if settings.serving_dir.exists():
        from evergreen.rollout.controller import RolloutController

        RolloutController(settings).stop()


def run_demo(settings: EvergreenSettings, plan: DemoPlan, console: Console) -> DemoSummary:
    """Run the loop end to end; serving is stopped at the end (``evergreen serve`` restarts)."""
    from evergreen.loop.demo_steps import DemoRun

    reset_state(settings)
    ensure_instance(settings)
    run = DemoRun(settings, plan, DagsterInstance.get(), console)
    began = time.perf_counter()
    try:
        run.simulate()
        run.history()
        run.first_model()
        run.live()
        run.labels_mature()
        summary = run.summary()
    finally:
        _stop_serving(settings)
    console.print(f"[bold]Demo done[/] in {time.perf_counter() - began:,.0f} s.")
    return summary


def drift_day(settings: EvergreenSettings, plan: DemoPlan) -> dt.date:
    """The first day of the drift scenario."""
    return settings.start_date + dt.timedelta(days=plan.history_days + plan.drift_after)
