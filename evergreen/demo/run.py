"""``make demo``: the whole loop, headless, on the embedded defaults.

A simulated bank's history is ingested, turned into features, a first model is trained, gated,
built and rolled out behind the router. Then new days arrive while a bounded load loop keeps
paying through the router: a concept and covariate drift starts, the sensors find it, the
retrain policy lets a retrain through, the gate decides and a canary rolls the winner out. The
sensors and automation conditions are the code location's own, evaluated in-process on the
same Dagster instance the UI reads (``evergreen.demo.driver``), so ``make ui`` shows it all.
Prometheus and Alertmanager (``evergreen observe``'s stack, on the demo's timing) watch it all
along; the summary ends with the alerts they raised and to whom they were routed.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from dagster import DagsterInstance
from rich.console import Console

from evergreen.demo.plan import DemoPlan, DemoSummary
from evergreen.demo.report import print_alerts
from evergreen.instance import ensure_instance
from evergreen.settings import EvergreenSettings, write_home_settings

DEMO_MARKER = ".evergreen-demo"


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
        settings.observe_dir,
        settings.dagster_home,
    ):
        shutil.rmtree(path, ignore_errors=True)
    settings.ensure_dirs()
    (settings.home / DEMO_MARKER).write_text("made by `evergreen demo`\n")


def _stop_serving(settings: EvergreenSettings) -> None:
    if settings.serving_dir.exists():
        from evergreen.rollout.controller import RolloutController

        RolloutController(settings).stop()


def _watch(settings: EvergreenSettings, console: Console):
    """Prometheus and Alertmanager watching the demo on its own timing, when Debian's packages
    are installed (``make servers``); None when they are not."""
    from evergreen.observe.config import ObserveConfig
    from evergreen.observe.stack import ObserveError, ObserveStack

    try:
        stack = ObserveStack(settings, ObserveConfig.demo()).start()
    except ObserveError as error:
        console.print(f"[yellow]Not watched:[/] {error}")
        return None
    console.print(
        f"Prometheus watches the demo on {stack.prometheus_url}; every alert goes to the "
        "ledger (`evergreen alerts`)"
    )
    return stack


def run_demo(home: Path, plan: DemoPlan, console: Console) -> DemoSummary:
    """Run the loop end to end in ``home``; serving is stopped at the end (``evergreen serve``
    restarts it). The plan's settings are recorded in the home before anything reads them."""
    from evergreen.demo.steps import DemoRun

    reset_state(EvergreenSettings(home=home))
    write_home_settings(home, plan.settings)
    settings = EvergreenSettings(home=home)
    ensure_instance(settings)
    run = DemoRun(settings, plan, DagsterInstance.get(), console)
    began = time.perf_counter()
    watching = _watch(settings, console)
    try:
        run.simulate()
        run.history()
        run.first_model()
        run.live()
        run.labels_mature()
        summary = run.summary()
        if watching is not None:
            summary.alerts = print_alerts(settings, console)
    finally:
        _stop_serving(settings)
        if watching is not None:
            watching.stop()
    console.print(f"[bold]Demo done[/] in {time.perf_counter() - began:,.0f} s.")
    return summary
