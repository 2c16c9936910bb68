"""Training: the model's inputs, the time split, the threshold and reproducibility."""

import math

import numpy as np
import pandas as pd
import pytest

from evergreen.models.features import (
    CATEGORICAL_FEATURES,
    FEATURE_NAMES,
    MISSING_CATEGORY,
    model_frame,
)
from evergreen.models.training import choose_threshold, split_by_time, train_candidate

NOT_FEATURES = {
    "transaction_id",
    "customer_id",
    "terminal_id",
    "event_timestamp",
    "tx_datetime",
    "label",
    "label_landed_on",
}


def test_the_model_reads_every_feature_of_the_training_set(training_frame):
    assert set(training_frame.columns) - NOT_FEATURES == set(FEATURE_NAMES)
    assert FEATURE_NAMES[-3:] == CATEGORICAL_FEATURES


def test_model_frame_orders_columns_and_keeps_nulls():
    rows = pd.DataFrame(
        {name: [1, None] for name in reversed(FEATURE_NAMES)}
        | {"region": ["north", None], "channel": ["pos", "web"], "card_type": ["debit", "credit"]}
        | {"label": [0, 1]}
    )

    frame = model_frame(rows)

    assert list(frame.columns) == FEATURE_NAMES
    assert frame["amount"].dtype == np.float64 and math.isnan(frame["amount"].iloc[1])
    assert frame["region"].tolist() == ["north", MISSING_CATEGORY]
    with pytest.raises(ValueError, match="lacks the model's input column.*terminal_risk_7d"):
        model_frame(rows.drop(columns=["terminal_risk_7d"]))


def test_the_newest_days_are_held_out_and_never_trained_on(training_frame, split):
    days = sorted(training_frame["tx_datetime"].dt.date.unique())
    part_days = {
        name: sorted(part["tx_datetime"].dt.date.unique()) for name, part in split.parts().items()
    }

    assert part_days["evaluation"] == days[-7:]
    assert part_days["validation"] == days[-11:-7]
    assert part_days["train"] == days[:-11]
    assert sum(len(p) for p in split.parts().values()) == len(training_frame)
    with pytest.raises(ValueError, match=r"spans 17 day\(s\).*need 18"):
        split_by_time(training_frame, evaluation_days=10, validation_days=7)


def test_retraining_on_the_same_inputs_gives_the_same_model(trained, retrained, split, tmp_path):
    first = trained.predict_proba(split.evaluation)
    again = retrained.predict_proba(split.evaluation)

    assert np.array_equal(first, again)
    assert trained.threshold == retrained.threshold
    assert trained.best_iteration == retrained.best_iteration
    a = trained.save(tmp_path / "a.cbm").read_bytes()
    assert a == retrained.save(tmp_path / "b.cbm").read_bytes()


def test_another_seed_gives_another_model(trained, quick_models, split):
    scores = [m.predict_proba(split.evaluation) for m in (trained, *quick_models)]

    assert not any(np.array_equal(scores[0], other) for other in scores[1:])
    assert quick_models[0].params["random_seed"] == 1


def test_training_records_what_reproduces_it(trained, split):
    assert trained.params["random_seed"] == trained.seed == 0
    assert trained.params["thread_count"] == 2
    assert 0 < trained.best_iteration < trained.params["iterations"]  # stopped early
    assert trained.tree_count == trained.best_iteration + 1  # and kept the best model
    assert trained.rows == {"train": len(split.train), "validation": len(split.validation)}
    assert set(trained.library_versions) >= {"python", "catboost", "numpy", "pandas"}
    assert len(trained.learning_curve["validation"]) > trained.best_iteration
    assert trained.validation_metrics["roc_auc"] > 0.7
    assert {name for name, _ in trained.feature_importances} == set(FEATURE_NAMES)
    assert sum(value for _, value in trained.feature_importances) == pytest.approx(100)


def test_the_threshold_maximises_f1_on_validation(trained, split):
    labels = split.validation["label"].to_numpy()
    scores = trained.predict_proba(split.validation)

    def f1(threshold):
        flagged = scores >= threshold
        tp = (flagged & (labels == 1)).sum()
        return 2 * tp / (flagged.sum() + labels.sum())

    best = f1(trained.threshold)
    assert best == pytest.approx(trained.validation_metrics["f1"])
    assert all(f1(t) <= best + 1e-12 for t in np.unique(scores))


def test_choose_threshold_on_a_hand_made_case():
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8])

    # >= 0.35 flags three with both frauds: F1 0.8, better than 0.8 alone (0.67) or 0.4 (0.5).
    assert choose_threshold(labels, scores) == pytest.approx(0.35)


def test_training_refuses_days_without_frauds(split):
    genuine_only = split.validation.assign(label=0)

    with pytest.raises(ValueError, match="validation days .* 0 fraud"):
        train_candidate(split.train, genuine_only, seed=0)
