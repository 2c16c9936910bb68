"""Shared fixtures: a small simulated landing zone and a real Dagster instance per test."""

import datetime as dt
import shutil
from pathlib import Path

import pytest
from dagster import instance_for_test

from evergreen.settings import EvergreenSettings

START = dt.date(2018, 4, 1)
SMALL = {"customers": 300, "terminals": 600, "start": START, "seed": 7, "label_delay_days": 3}


# The files that take longest run first, so under `make test`'s workers (pytest-xdist,
# one file per worker, `--no-loadscope-reorder` in the Makefile) the long tail is short
# files, not the demo starting last.
LONGEST_FIRST = ("tests/demo/test_demo.py", "tests/serving/test_container_e2e.py")


def pytest_collection_modifyitems(config, items) -> None:
    """Put the longest files' tests first, keeping every other test in collection order."""

    def rank(item) -> int:
        path = Path(str(item.path)).resolve().relative_to(Path(str(config.rootpath)).resolve())
        name = path.as_posix()
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


def day(i: int) -> dt.date:
    """The i-th simulated day."""
    return START + dt.timedelta(days=i)


def make_settings(home: Path) -> EvergreenSettings:
    """Settings rooted in a test's own folder, with the small zone's label delay."""
    return EvergreenSettings(home=home, label_delay_days=SMALL["label_delay_days"]).ensure_dirs()


# The cluster profile needs its servers named; an ingest talks to neither.
UNUSED_SERVERS = {
    "postgres_url": "postgresql://unused@127.0.0.1:9/unused",
    "redis_url": "redis://127.0.0.1:9/0",
}


def cluster_settings(home: Path, shared: Path) -> EvergreenSettings:
    """A worker host of the cluster profile: its own home, the shared store (where its
    landing zone, quarantine and raw partitions are)."""
    return EvergreenSettings(
        home=home,
        profile="cluster",
        shared_store=shared,
        label_delay_days=SMALL["label_delay_days"],
        **UNUSED_SERVERS,
    ).ensure_dirs()


def settings_env(settings: EvergreenSettings) -> dict[str, str]:
    """The environment a process of ``settings`` runs with (what it reads them from)."""
    env = {"EVERGREEN_HOME": str(settings.home)}
    if settings.is_cluster:
        env |= {
            "EVERGREEN_PROFILE": "cluster",
            "EVERGREEN_SHARED_STORE": str(settings.shared_store),
            "EVERGREEN_POSTGRES_URL": str(settings.postgres_url),
            "EVERGREEN_REDIS_URL": str(settings.redis_url),
        }
    return env | {"EVERGREEN_LABEL_DELAY_DAYS": str(settings.label_delay_days)}


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


@pytest.fixture(params=["local", "cluster"])
def any_profile_settings(request, tmp_path, clean_zone) -> EvergreenSettings:
    """``settings`` on each profile: on the cluster's, the landing zone on a shared store."""
    if request.param == "local":
        return request.getfixturevalue("settings")
    s = cluster_settings(tmp_path / "home", tmp_path / "shared")
    shutil.copytree(clean_zone, s.landing_dir, dirs_exist_ok=True)
    return s


@pytest.fixture
def instance():
    """A real, temporary Dagster instance (SQLite storage on disk)."""
    with instance_for_test() as inst:
        yield inst
