"""Evidently reports: an HTML file is written, and per-feature drift finds a shifted column."""

import numpy as np
import pandas as pd
import pytest

from evergreen.models.report import (
    evidently_report,
    feature_drift,
    sample_rows,
    write_evidently_report,
)

FEATURES = ["amount", "terminal_risk_7d", "region"]


def frame(n: int, seed: int, amount_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.05).astype(int)
    return pd.DataFrame(
        {
            "amount": rng.normal(50 + amount_shift, 10, n),
            "terminal_risk_7d": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
            "region": rng.choice(["north", "south"], n),
            "label": label,
            "score": np.clip(0.05 + 0.5 * label + rng.normal(0, 0.1, n), 0, 1),
        }
    )


def test_the_report_is_written_as_html_with_the_drift_it_found(tmp_path):
    written = evidently_report(
        frame(3000, 0),
        frame(3000, 1, amount_shift=20),
        tmp_path / "r" / "report.html",
        features=FEATURES,
        categorical=["region"],
        threshold=0.3,
        max_rows=1000,
    )

    text = written.path.read_text()
    assert written.path.name == "report.html"
    assert text.lstrip().lower().startswith("<!doctype html")
    assert "amount" in text and len(text) > 100_000
    assert list(written.drift) == FEATURES
    assert [c for c, d in written.drift.items() if d.drifted] == ["amount"]


def test_feature_drift_flags_the_shifted_column_only():
    drift = feature_drift(
        frame(3000, 0), frame(3000, 1, amount_shift=20), FEATURES, categorical=["region"]
    )

    assert list(drift) == FEATURES
    assert drift["amount"].drifted and drift["amount"].score > drift["amount"].threshold
    assert not drift["region"].drifted and not drift["terminal_risk_7d"].drifted
    assert drift["amount"].method


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"current frame lacks column\(s\) \['score'\]"):
        write_evidently_report(
            frame(10, 0),
            frame(10, 1).drop(columns=["score"]),
            tmp_path / "x.html",
            features=FEATURES,
        )
    with pytest.raises(ValueError, match=r"lacks feature column\(s\) \['nope'\]"):
        feature_drift(frame(10, 0), frame(10, 1), ["nope"])


def test_large_frames_are_sampled_with_a_seed():
    big = frame(5000, 0)
    assert len(sample_rows(big, 1000, seed=0)) == 1000
    assert sample_rows(big, 1000, seed=0).index.equals(sample_rows(big, 1000, seed=0).index)
    assert sample_rows(big, 10_000) is big
