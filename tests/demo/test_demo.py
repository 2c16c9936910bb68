"""`make demo` in its shortened form: the whole loop with a real router, real bento replicas,
the code location's own sensors, a drift, and zero failed requests."""

import socket

import pytest
from rich.console import Console

from evergreen.demo.plan import DemoPlan
from evergreen.demo.run import run_demo
from evergreen.settings import EvergreenSettings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
def test_the_loop_runs_end_to_end_without_a_failed_request(tmp_path, monkeypatch):
    # The user's environment: a home and free ports; the plan's settings go into the home's file.
    shortened = {
        "HOME": str(tmp_path / "home"),
        "SERVE_PORT": str(_free_port()),
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
    assert summary.rollouts.get("completed", 0) >= 1
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
    assert not list((tmp_path / "home" / "serving").rglob("*.pid"))  # serving was stopped
