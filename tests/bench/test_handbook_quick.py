"""``bench/handbook.py --quick`` end to end in a subprocess: simulate, ingest, Feast, models."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODELS = (
    "catboost_feast",
    "catboost_feast_daily_only",
    "logreg_handbook",
    "random_forest_handbook",
    "catboost_handbook",
)
PER_MODEL = (
    "roc_auc",
    "average_precision",
    "card_precision_at_100",
    "train_s",
    "train_cpu_s",
    "predict_s",
)
COUNTS = ("train_rows", "train_frauds", "test_rows", "test_frauds", "test_week_rows")


@pytest.mark.e2e
def test_quick_handbook_bench_writes_every_figure(tmp_path):
    out = tmp_path / "handbook.json"
    # The bench makes its own home; no EVERGREEN_* setting of the caller may leak into it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVERGREEN_")}
    done = subprocess.run(
        [sys.executable, "bench/handbook.py", "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())

    missing = [f"{m}_{k}" for m in MODELS for k in PER_MODEL if f"{m}_{k}" not in figures]
    missing += [k for k in COUNTS if k not in figures]
    assert not missing, f"missing figures: {missing}"
    for model in MODELS:
        auc = figures[f"{model}_roc_auc"]
        assert 0.5 < auc <= 1.0, f"{model}: ROC AUC {auc}"
        assert 0.0 < figures[f"{model}_average_precision"] <= 1.0
        assert 0.0 <= figures[f"{model}_card_precision_at_100"] <= 1.0
        assert figures[f"{model}_train_s"] > 0 and figures[f"{model}_predict_s"] > 0
    # The test week minus the known-compromised cards, with frauds on both sides.
    assert (
        figures["test_rows"] + figures["test_known_compromised_removed_rows"]
        == (figures["test_week_rows"])
    )
    assert figures["test_known_compromised_removed_rows"] > 0
    assert 0 < figures["train_frauds"] < figures["train_rows"]
    assert 0 < figures["test_frauds"] < figures["test_rows"]
    assert "CatBoost on Feast features (ours)" in done.stdout
