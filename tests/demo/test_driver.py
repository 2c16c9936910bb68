"""The headless daemon tick: the landing sensor and automation conditions, run in-process."""

import shutil

from dagster import Definitions

from assets.features import customer_spending_features, terminal_risk_features
from assets.raw_data import raw_labels, raw_transactions
from evergreen.demo.driver import LoopDriver
from evergreen.resources import EvergreenResource
from sensors.landing_sensor import landing_zone_sensor
from tests.conftest import day


def _land(clean_zone, settings, i: int) -> None:
    for feed in ("transactions", "labels"):
        folder = f"date={day(i).isoformat()}"
        if (clean_zone / feed / folder).exists():
            shutil.copytree(clean_zone / feed / folder, settings.landing_dir / feed / folder)


def test_landed_days_flow_to_raw_then_features_and_nothing_runs_twice(
    settings, instance, clean_zone, tmp_path
):
    # Land only the first three days; the rest arrive later.
    shutil.rmtree(settings.landing_dir)
    for i in range(3):
        _land(clean_zone, settings, i)
    defs = Definitions(
        assets=[raw_transactions, raw_labels, customer_spending_features, terminal_risk_features],
        sensors=[landing_zone_sensor],
        resources={"evergreen": EvergreenResource(home=str(settings.home))},
    )
    driver = LoopDriver(defs, instance, settings)

    first = driver.tick()
    assert {(r.source, r.partition) for r in first} == {
        ("landing_zone_sensor", day(i).isoformat()) for i in range(3)
    }
    assert all(r.success for r in first)
    assert driver.tick() == []  # the sensor's cursor and the automation cursor hold

    _land(clean_zone, settings, 3)
    fourth = driver.tick()
    raw = [r for r in fourth if r.source == "landing_zone_sensor"]
    refreshed = [r for r in fourth if r.source == "automation"]
    assert sorted((r.partition, r.assets[0]) for r in raw) == [
        (day(3).isoformat(), "raw_labels"),  # the first labels land on day 3
        (day(3).isoformat(), "raw_transactions"),
    ]
    assert [(r.partition, sorted(r.assets)) for r in refreshed] == [
        (day(3).isoformat(), ["customer_spending_features", "terminal_risk_features"])
    ]
    assert all(r.success for r in fourth)
