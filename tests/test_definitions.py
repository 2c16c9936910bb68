"""The code location loads, as `dagster dev` and CI load it."""

import os
import subprocess
import sys
from pathlib import Path

from evergreen.instance import INSTANCE_YAML

ROOT = Path(__file__).resolve().parents[1]


def test_code_location_validates(tmp_path):
    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster" / "dagster.yaml").write_text(INSTANCE_YAML)
    env = {**os.environ, "EVERGREEN_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster")}
    dagster = Path(sys.executable).with_name("dagster")
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Validation successful" in done.stderr + done.stdout


def test_every_asset_has_blocking_checks():
    from definitions import defs

    graph = defs.resolve_asset_graph()
    for key in ("raw_transactions", "raw_labels"):
        checks = [c for c in graph.asset_check_keys if c.asset_key.to_user_string() == key]
        assert len(checks) >= 6
        for check in checks:
            assert graph.get_check_spec(check).blocking


def test_sensors_and_automation_start_running():
    from dagster import DefaultSensorStatus

    from definitions import defs

    sensors = {s.name: s for s in defs.sensors}
    assert {"landing_zone_sensor", "evergreen_automation"} <= set(sensors)
    for sensor in sensors.values():
        assert sensor.default_status == DefaultSensorStatus.RUNNING


def test_periodic_assets_carry_a_freshness_policy_and_code_only_assets_do_not():
    from definitions import defs

    specs = {s.key.to_user_string(): s for a in defs.assets for s in a.specs}
    assert specs["raw_transactions"].freshness_policy.fail_window.to_timedelta().days == 1
    assert specs["training_set"].freshness_policy.fail_window.to_timedelta().days == 8
    assert specs["feature_definitions"].freshness_policy is None


def test_every_asset_links_to_the_line_that_defines_it():
    from definitions import defs

    for spec in defs.resolve_all_asset_specs():
        references = spec.metadata["dagster/code_references"].code_references
        path, line = Path(references[0].file_path), references[0].line_number
        assert path.is_relative_to(ROOT / "assets"), spec.key
        assert spec.key.path[-1] in "\n".join(path.read_text().splitlines()[line - 1 : line + 30])
