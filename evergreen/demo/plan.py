"""What a demo is: the plan (how big the simulated world is, how the live stretch goes, the
settings it runs on) and the summary it ends with."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from evergreen.settings import EvergreenSettings
from evergreen.simulator.frauds import SCENARIO_2_WINDOW_DAYS
from evergreen.simulator.scenarios import DEFAULT_SCENARIO


@dataclass(frozen=True)
class DemoPlan:
    """How big the simulated world is and how the live stretch goes."""

    customers: int = 1000
    terminals: int = 2000
    # 30 days for the 30-day windows to fill, then a 28-day training window: a shorter history
    # makes the first live days look drifted against a reference still warming up.
    history_days: int = 60
    # Days the simulator's fraud scenarios have run before the first day (``SimulatorConfig.
    # fraud_burn_in_days``): 0 is the handbook, whose fraud share climbs for its first month.
    fraud_burn_in_days: int = 0
    live_days: int = 10
    drift_after: int = 3  # live days before the drift starts
    # The drift scenario (``evergreen.simulator.scenarios``): concept, covariate, gradual, none.
    scenario: str = DEFAULT_SCENARIO
    # Every live payment goes through the router (the request-time state is the real one, and
    # served AP per day needs them all), one per request or ``replay_batch`` to a request.
    replay_batch: int = 1
    replay_rate: float = 200.0  # requests per second
    ticks_per_day: int = 2  # daemon ticks per live day: the second sees what the first made
    heartbeat_rate: float = 5.0
    canary_steps: tuple[int, ...] = (25, 100)
    canary_step_seconds: float = 6.0
    # Settings the plan needs, recorded in the home's evergreen.yaml (``write_home_settings``),
    # which the partitions and the resource both read; an EVERGREEN_* variable still wins.
    settings: dict[str, object] = field(default_factory=dict)

    @classmethod
    def quick(cls) -> DemoPlan:
        """The shortened loop the end-to-end test runs: long enough for the concept drift's
        labels to mature (label delay 3) and a follow-up retrain to serve for two days. The
        14 days of history leave the 7- and 30-day windows filling in the first model's
        reference; the drift monitor does not judge those (``monitors.warming_features``),
        which would otherwise alarm on the first live day, a day before the drift, and date
        the follow-ups from it. The world starts 28 days into its fraud scenarios: from the
        handbook's first day, 14 days in, the compromised terminals (28 days each) and cards
        (14) are still accumulating, and the terminals' risk and the amounts of the first live
        day drifted from the reference with no drift begun (seen on seed 2)."""
        return cls(
            customers=600,
            terminals=1200,
            history_days=14,
            fraud_burn_in_days=SCENARIO_2_WINDOW_DAYS,
            live_days=10,
            drift_after=1,
            replay_batch=100,
            canary_step_seconds=2.0,
            # 14 days of history: shorter label delay and windows, or no training set fits.
            settings={
                "label_delay_days": 3,
                "training_window_days": 10,
                "evaluation_days": 3,
                "validation_days": 2,
                # Two matured days judge a decay: with drift from the second live day, a
                # 3-day window first holds only drift days on 2018-04-21 and the follow-ups
                # then serve for one day of the ten (measured: README, Benchmarks).
                "performance_window_days": 2,
                "monitor_min_frauds": 10,
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
    torn_retries: int = 0  # answers torn after their headers and sent again (serving.client)
    requests: int = 0
    scores: list = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    rollouts: dict[str, int] = field(default_factory=dict)
    triggers: dict[str, int] = field(default_factory=dict)
    recovery_days: int | None = None  # see ``evergreen.loop.recovery.recovery_days``
    daily: object = None  # ``evergreen.loop.recovery.daily_recovery``'s frame
    scenario: str = ""
    recovery_plot: object = None  # the PNG's path
    alerts: list = field(default_factory=list)  # (alert, severity, receiver, fired, resolved)


def drift_day(settings: EvergreenSettings, plan: DemoPlan) -> dt.date:
    """The first day of the drift scenario."""
    return settings.start_date + dt.timedelta(days=plan.history_days + plan.drift_after)
