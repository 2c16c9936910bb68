"""``evergreen simulate``: runs, appends, and rejects bad input in one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evergreen.settings import get_settings
from evergreen.simulator.cli import simulate_app

TINY = ["--customers", "50", "--terminals", "100", "--days", "3", "--label-delay", "1"]


def run(*args: str):
    return CliRunner().invoke(simulate_app, list(args))


def state(out: Path) -> dict:
    return json.loads((out / "_simulator.json").read_text())


def test_simulate_then_append(tmp_path: Path) -> None:
    result = run("--out", str(tmp_path), *TINY, "--bad-data", "late_file@2018-04-03")
    assert result.exit_code == 0, result.output
    assert "transactions" in result.output and "scenario 2" in result.output
    assert len(list(tmp_path.glob("transactions/date=*/part-0.parquet"))) == 3
    assert state(tmp_path)["days_generated"] == 3

    result = run("--out", str(tmp_path), "--append", "--bad-data", "empty_day@2018-04-04")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "transactions/date=2018-04-03/part-1.parquet").exists()
    result = run("--out", str(tmp_path), "--append", "--days", "2")
    assert result.exit_code == 0, result.output
    assert state(tmp_path)["days_generated"] == 6
    assert {"kind": "empty_day", "date": "2018-04-04"} in state(tmp_path)["config"]["bad_data"]


def test_a_named_drift_scenario_is_recorded_in_the_config(tmp_path: Path) -> None:
    result = run("--out", str(tmp_path), *TINY, "--drift", "gradual@2018-04-02")
    assert result.exit_code == 0, result.output
    config = state(tmp_path)["config"]
    assert config["concept_drift_start"] == config["covariate_drift_start"] == "2018-04-02"
    assert config["drift_ramp_days"] == 14


def test_a_fraud_burn_in_is_recorded_in_the_config(tmp_path: Path) -> None:
    result = run("--out", str(tmp_path), *TINY, "--fraud-burn-in", "28")
    assert result.exit_code == 0, result.output
    assert state(tmp_path)["config"]["fraud_burn_in_days"] == 28


def test_default_out_is_the_settings_landing_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EVERGREEN_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        result = run(*TINY, "--days", "1")
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert (tmp_path / "landing/_simulator.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*TINY, "--bad-data", "melted_disk@2018-04-02"], "unknown kind 'melted_disk'"),
        ([*TINY, "--bad-data", "empty_day"], "not KIND@YYYY-MM-DD"),
        ([*TINY, "--bad-data", "empty_day@2018-02-30"], "not a date"),
        ([*TINY, "--start", "yesterday"], "--start: 'yesterday' is not a date"),
        ([*TINY, "--bad-data", "empty_day@2017-01-01"], "before the start"),
        (["--append"], "_simulator.json not found"),
        ([*TINY, "--drift", "meteor@2018-04-02"], "--drift: 'meteor@2018-04-02' is not SCENARIO@"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = run("--out", str(tmp_path / "zone"), *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "zone" / "_simulator.json").exists()


def test_existing_zone_and_config_options_with_append_are_refused(tmp_path: Path) -> None:
    assert run("--out", str(tmp_path), *TINY).exit_code == 0
    again = run("--out", str(tmp_path), *TINY)
    assert again.exit_code == 2 and "already holds a simulation" in again.output
    clash = run("--out", str(tmp_path), "--append", "--seed", "3")
    assert clash.exit_code == 2 and "--seed cannot change" in clash.output
    assert "Traceback" not in again.output + clash.output
