"""Card-fraud transaction simulator after the Fraud Detection Handbook, with drift and bad data.

``generate_day`` gives one day's truth in memory; ``simulate`` and ``append_day`` write the
landing zone (see ``landing``); ``bad_data`` documents each kind of injected corruption.
"""

from evergreen.simulator.config import BadData, BadDataKind, SimulatorConfig
from evergreen.simulator.population import Population, build_population
from evergreen.simulator.runner import SimulationSummary, append_day, append_days, simulate
from evergreen.simulator.scenarios import DriftScenario
from evergreen.simulator.transactions import generate_day

__all__ = [
    "BadData",
    "BadDataKind",
    "DriftScenario",
    "Population",
    "SimulationSummary",
    "SimulatorConfig",
    "append_day",
    "append_days",
    "build_population",
    "generate_day",
    "simulate",
]
