"""``bench/loop.py --quick`` in a subprocess: the drift part and the volume-bound data stages at
tiny sizes (the serving part is skipped in --quick, and the output says so)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARES = (
    "drift_stationary_share_median",
    "drift_stationary_share_max",
    "drift_after_start_share_median",
)
COUNTS = (
    "drift_false_alarms_count",
    "drift_stationary_days_over_enter_count",
    "drift_live_rows_per_day_median",
    "data_1m_tx_per_day",
    "data_1m_training_set_rows",
)
SECONDS = (
    "drift_check_s_median",
    "drift_judge_s",
    "data_1m_ingest_day_s",
    "data_1m_features_day_s",
    "data_1m_training_set_day_s",
    "data_1m_stages_total_s",
)


@pytest.mark.e2e
def test_quick_loop_bench_writes_sane_figures(tmp_path):
    out = tmp_path / "loop.json"
    # The bench makes its own homes; no EVERGREEN_* setting of the caller may leak into them.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVERGREEN_", "DAGSTER_"))}
    command = [sys.executable, "bench/loop.py", "--quick", "--json", str(out)]
    done = subprocess.run(
        [*command, "--workdir", str(tmp_path / "work")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())

    missing = [k for k in (*SHARES, *COUNTS, *SECONDS) if k not in figures]
    assert not missing, missing
    assert figures["quick"] is True
    assert figures["drift_stationary_days"] == 2 and figures["drift_days_after_start"] == 1
    assert all(0.0 <= figures[k] <= 1.0 for k in SHARES)
    assert figures["drift_stationary_share_median"] <= figures["drift_stationary_share_max"]
    # The simulator's drift moves more features than the stationary days' noise does.
    assert figures["drift_after_start_share_median"] > figures["drift_stationary_share_median"]
    assert figures["drift_first_over_enter_delay_days"] == 0
    assert all(isinstance(figures[k], int) and figures[k] >= 0 for k in COUNTS)
    assert figures["drift_false_alarms_count"] <= figures["drift_stationary_days"]
    assert figures["data_1m_training_set_rows"] > 0
    assert all(0.0 < figures[k] < 120.0 for k in SECONDS)
    assert "serving: skipped in --quick" in done.stdout and "serving" in figures["notes"]
