"""The loop's state as metrics, read from what the loop writes: the landing zone, the Dagster
instance (a real one under the test's home), the ledger and the monitors' kept findings."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
from dagster import AssetMaterialization, DagsterInstance, job, op
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from evergreen.instance import ensure_instance
from evergreen.loop.monitors import DriftFinding, PerformanceFinding, write_finding
from evergreen.loop.retrain_policy import RetrainGovernor, Trigger
from evergreen.observe.loop_metrics import day_seconds, loop_registry
from evergreen.settings import EvergreenSettings

DAY = dt.date(2018, 5, 10)


@pytest.fixture
def home(tmp_path, monkeypatch) -> EvergreenSettings:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    return EvergreenSettings(home=tmp_path / "home").ensure_dirs()


def scrape(settings: EvergreenSettings) -> dict[tuple[str, tuple], float]:
    """One scrape of the loop's registry: (sample name, sorted labels) -> value."""
    text = generate_latest(loop_registry(settings)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def land(settings: EvergreenSettings, feed: str, day: dt.date, mtime: float) -> None:
    folder = settings.landing_dir / feed / f"date={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "part-0.csv"
    path.write_text("x\n")
    os.utime(path, (mtime, mtime))


def test_an_empty_home_exports_no_loop_state_and_no_error(home):
    found = scrape(home)
    errors = {k[1][0][1]: v for k, v in found.items() if k[0] == "evergreen_loop_metrics_error"}
    assert errors == dict.fromkeys(["landing", "dagster", "ledger", "findings", "serving"], 0.0)
    assert found[("evergreen_serving_expected", ())] == 0.0
    names = {name for name, _ in found}
    assert "evergreen_drift_severity" not in names
    assert "evergreen_newest_matured_label_day_timestamp" not in names


def test_landing_findings_triggers_and_runs_become_metrics(home):
    landed_at = time.time() - 3600
    land(home, "transactions", DAY, landed_at - 86400)
    land(home, "transactions", DAY + dt.timedelta(days=1), landed_at)
    write_finding(home, "drift", DAY, DriftFinding(DAY, 0.42, "test: drift day"))
    write_finding(home, "drift", DAY + dt.timedelta(days=1), DriftFinding(DAY, None, "no rows"))
    write_finding(home, "performance", DAY, PerformanceFinding(DAY, DAY, DAY, 0.125, "test: decay"))
    governor = RetrainGovernor(home)
    at = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    governor.consider(Trigger("manual", at))
    governor.consider(Trigger("manual", at))  # within the cooldown: suppressed
    instance = DagsterInstance.from_config(str(ensure_instance(home)))
    instance.report_runless_asset_event(
        AssetMaterialization("raw_labels", partition=(DAY - dt.timedelta(days=2)).isoformat())
    )

    @op
    def fails():
        raise RuntimeError("test: the retrain broke")

    @job(name="retrain")
    def retrain():
        fails()

    assert not retrain.execute_in_process(instance=instance, raise_on_error=False).success

    found = scrape(home)

    feed = (("feed", "transactions"),)
    assert found[("evergreen_newest_landed_day_timestamp", feed)] == day_seconds(
        DAY + dt.timedelta(days=1)
    )
    # When the newest day was first seen, not its file's time (a simulator's is its world's).
    first_seen = found[("evergreen_last_landing_timestamp_seconds", feed)]
    assert landed_at + 3000 < first_seen <= time.time()
    assert found[("evergreen_drift_severity", ())] == 0.42  # the newest day JUDGED
    assert found[("evergreen_drift_severity_day_timestamp_seconds", ())] == day_seconds(DAY)
    assert found[("evergreen_performance_decay", ())] == 0.125
    assert found[("evergreen_newest_matured_label_day_timestamp", ())] == day_seconds(
        DAY - dt.timedelta(days=2)
    )
    manual = (("kind", "manual"), ("outcome", "accepted"))
    assert found[("evergreen_retrains_total", manual)] == 1
    assert found[("evergreen_retrains_total", (manual[0], ("outcome", "suppressed")))] == 1
    assert found[("evergreen_job_last_run_failed", (("dagster_job", "retrain"),))] == 1.0
    assert not [k for k, v in found.items() if k[0] == "evergreen_loop_metrics_error" and v]

    # A restarted observer remembers when it saw the day; a new day is seen anew.
    assert scrape(home)[("evergreen_last_landing_timestamp_seconds", feed)] == first_seen
    land(home, "transactions", DAY + dt.timedelta(days=2), landed_at)
    assert scrape(home)[("evergreen_last_landing_timestamp_seconds", feed)] > first_seen
