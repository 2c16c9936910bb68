"""`make demo` in a shortened form: simulate, ingest behind the checks, summarize."""

import pytest
from rich.console import Console

from evergreen.demo import run_demo
from evergreen.settings import EvergreenSettings


@pytest.mark.e2e
def test_demo_runs_end_to_end_and_reconciles(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    settings = EvergreenSettings(home=tmp_path / "home")
    console = Console(record=True, width=200)

    assert run_demo(settings, days=15, console=console) == 0

    text = console.export_text()
    assert "Rows reconciled (landed = loaded + quarantined) in every partition: yes" in text
    assert "exact copy of part-0.parquet" in text  # the demo's repeated file, set aside
    assert "value_ranges" in text  # the demo's negative amounts, caught
    assert list((tmp_path / "dagster").glob("dagster.yaml"))
    for asset in ("customer_spending_features", "feature_definitions", "training_set"):
        assert asset in text
    assert list((tmp_path / "home").rglob("training_set.parquet"))
