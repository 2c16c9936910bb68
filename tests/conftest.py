"""Shared fixtures: a small simulated landing zone and a real Dagster instance per test."""

import datetime as dt
import shutil
from pathlib import Path

import pytest
from dagster import instance_for_test

from evergreen.settings import EvergreenSettings

START = dt.date(2018, 4, 1)
SMALL = {"customers": 300, "terminals": 600, "start": START, "seed": 7, "label_delay_days": 3}


def day(i: int) -> dt.date:
    """The i-th simulated day."""
    return START + dt.timedelta(days=i)


def make_settings(home: Path) -> EvergreenSettings:
    """Settings rooted in a test's own folder, with the small zone's label delay."""
    return EvergreenSettings(home=home, label_delay_days=SMALL["label_delay_days"]).ensure_dirs()


def simulate_small(out: Path, days: int = 12, bad_data=()) -> None:
    """Write a small landing zone (about 600 transactions a day) into ``out``."""
    from evergreen.simulator import BadData, SimulatorConfig, simulate

    bad = [BadData(kind=k, date=d) for k, d in bad_data]
    simulate(SimulatorConfig(days=days, bad_data=bad, **SMALL), out)


@pytest.fixture(scope="session")
def clean_zone(tmp_path_factory) -> Path:
    """A clean 12-day landing zone, simulated once and copied by the tests that use it."""
    out = tmp_path_factory.mktemp("clean") / "landing"
    simulate_small(out)
    return out


@pytest.fixture
def settings(tmp_path, clean_zone) -> EvergreenSettings:
    """A fresh EVERGREEN_HOME holding a copy of the clean landing zone."""
    s = make_settings(tmp_path / "home")
    shutil.copytree(clean_zone, s.landing_dir, dirs_exist_ok=True)
    return s


@pytest.fixture
def instance():
    """A real, temporary Dagster instance (SQLite storage on disk)."""
    with instance_for_test() as inst:
        yield inst
