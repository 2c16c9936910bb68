"""`make demo` in its shortened form: the whole loop with a real router, real bento replicas,
the code location's own sensors, a concept drift, a follow-up retrain once its labels matured,
served AP above a frozen model's after it, and zero failed requests."""

import datetime as dt

import pytest
from rich.console import Console

from evergreen.demo.plan import DemoPlan
from evergreen.demo.run import run_demo
from evergreen.loop.recovery import judged_follow_ups, mean_ap
from evergreen.loop.retrain_policy import RetrainGovernor
from evergreen.ports import free_port
from evergreen.settings import EvergreenSettings

# Served minus frozen mean daily AP on the days after the first follow-up the gate judged, in
# the quick plan: `python bench/drift_recovery.py --quick --scenarios concept --seeds S`
# measured 0.127 and 0.175 with the 1 %-of-volume pattern, then 0.480 (seed 1) with the
# pattern as large as the handbook's frauds, and 0.401 / 0.348 (seeds 1 / 2, 2026-12-03, no
# canary rolled back; README, Benchmarks), 0.364 / 0.322 with the world burnt in (28 days).
# Kept at about half the smallest ever measured (0.127), so
# seed noise of one day's ~60-150 frauds does not fail the test while a loop that stopped
# learning the drift (served == frozen, as when every canary failed) does.
MARGIN = 0.06


# The suite's one long test: 575 and 597 s in two `make test` runs that it finished (it shares
# the two cores with the rest, the container e2e among them), and past the suite's 600 s
# default in two more: cut off in the oracle step once, and in CI (2026-12-03) the timeout
# fired where it was swallowed.
@pytest.mark.e2e
@pytest.mark.timeout(1200)
def test_the_loop_runs_end_to_end_without_a_failed_request(tmp_path, monkeypatch):
    # The user's environment: a home and free ports; the plan's settings go into the home's file.
    shortened = {
        "HOME": str(tmp_path / "home"),
        "SERVE_PORT": str(free_port()),
    }
    for name, value in shortened.items():
        monkeypatch.setenv(f"EVERGREEN_{name}", value)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    console = Console(record=True, width=200)

    summary = run_demo(tmp_path / "home", DemoPlan.quick(), console)

    settings = EvergreenSettings()
    assert settings.label_delay_days == DemoPlan.quick().settings["label_delay_days"]

    assert summary.failed_requests == []
    assert summary.requests > 100
    assert summary.statuses.get("champion", 0) >= 1
    # The first rollout and at least one canary of a retrained model (its warm-up and probes
    # are sent at the data's time, which the replicas' request-time state requires).
    assert summary.rollouts.get("completed", 0) >= 2, summary.rollouts
    assert any(key.startswith("drift") for key in summary.triggers)  # the drift was seen
    assert [s.period.name for s in summary.scores][0] == "before the drift"
    assert all(s.served_ap is not None for s in summary.scores[:1])
    text = console.export_text()
    assert "Average precision, served vs frozen" in text
    assert "failed requests" in text
    monitoring = settings.reports_dir / "monitoring"
    for plot in ("live_ap.png", "drift_per_feature.png"):  # the whole live period, plotted
        assert (monitoring / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((monitoring / "drift").glob("*.json"))) >= DemoPlan.quick().live_days
    assert (monitoring / "recovery.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "oracle AP" in text and "Scenario concept" in text

    # The follow-up: asked once the labels of the drift's first days had matured, accepted,
    # trained and judged by the gate (its model serves, or the champion it did not beat: a
    # decay retrain may have learnt the drift already).
    history = RetrainGovernor(settings).history()
    follow_ups = [h for h in history if h["kind"] == "follow_up" and h["outcome"] == "accepted"]
    assert follow_ups, [(h["kind"], h["outcome"], h["reason"]) for h in history]
    judged = judged_follow_ups(settings)
    assert judged, [(h["kind"], h["outcome"], h["reason"]) for h in history]
    asked, _ = judged[0]
    [row] = [h for h in follow_ups if h["data_time"][:10] == asked.isoformat()]
    drift_from = dt.date.fromisoformat(row["evidence"]["drift_first_day"])
    assert asked >= drift_from + dt.timedelta(days=settings.label_delay_days + 1)
    # What served on the days after it beats the model frozen at the start by a margin.
    daily = summary.daily
    after = daily[daily["day"] > asked]
    assert len(after) >= 2
    served = mean_ap(daily, "served_ap", after["day"].min(), after["day"].max())
    frozen = mean_ap(daily, "frozen_ap", after["day"].min(), after["day"].max())
    assert served >= frozen + MARGIN, (served, frozen, daily.to_string())
    assert not list((tmp_path / "home" / "serving").rglob("*.pid"))  # serving was stopped
