"""Evaluation metrics on cases small enough to compute by hand, and the bootstrap's sums."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from evergreen.models.bootstrap import _RankedScores, customer_counts, paired_bootstrap
from evergreen.models.metrics import card_precision_at_k, evaluate, expected_calibration_error


def rows(*records):
    """(day, customer, score, label[, region]) -> a frame shaped like an evaluation window."""
    frame = pd.DataFrame(
        [r if len(r) == 5 else (*r, "north") for r in records],
        columns=["day", "customer_id", "score", "label", "region"],
    )
    frame["tx_datetime"] = pd.Timestamp("2018-05-01 12:00", tz="UTC") + pd.to_timedelta(
        frame.pop("day"), unit="D"
    )
    frame["channel"], frame["card_type"] = "pos", "debit"
    return frame


def test_card_precision_counts_cards_per_day_and_drops_cards_already_found():
    frame = rows(
        # Day 0: cards by max score A 0.9 (a fraud at 0.2), B 0.8, C 0.1 (fraud). Top 2: A, B.
        (0, "A", 0.9, 0),
        (0, "A", 0.2, 1),
        (0, "B", 0.8, 0),
        (0, "C", 0.1, 1),
        # Day 1: A was found on day 0 and is left out: top 2 are B (fraud) and C.
        (1, "A", 0.95, 1),
        (1, "B", 0.7, 1),
        (1, "C", 0.6, 0),
        (1, "D", 0.5, 1),
    )

    assert card_precision_at_k(frame, "score", k=2) == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert card_precision_at_k(frame, "score", k=2, remove_detected=False) == pytest.approx(
        (1 / 2 + 2 / 2) / 2
    )
    # k is the divisor even when fewer cards transacted that day.
    assert card_precision_at_k(frame, "score", k=10) == pytest.approx((2 / 10 + 2 / 10) / 2)


def test_expected_calibration_error_on_two_bins():
    labels = np.array([0, 1, 1, 1])
    scores = np.array([0.05, 0.05, 0.95, 0.95])

    # Bin [0, .1): share 0.5 vs mean score 0.05; bin [.9, 1]: 1.0 vs 0.95; each holds half.
    assert expected_calibration_error(labels, scores) == pytest.approx(0.5 * 0.45 + 0.5 * 0.05)
    assert expected_calibration_error(np.array([1]), np.array([1.0])) == 0.0
    assert expected_calibration_error(np.array([]), np.array([])) is None


def test_threshold_metrics_and_a_segment_without_frauds():
    frame = rows(
        (0, "A", 0.9, 1),
        (0, "B", 0.6, 0),
        (0, "C", 0.4, 1),
        (0, "D", 0.1, 0),
        (0, "E", 0.7, 0, "south"),
        (0, "F", 0.2, 0, "south"),
    )

    result = evaluate(frame, "score", threshold=0.5, k=2)

    overall = result.overall
    assert (overall.rows, overall.positives) == (6, 2)
    # Flagged (>= 0.5): A, B, E; one of them a fraud; one of two frauds found.
    assert overall.precision == pytest.approx(1 / 3)
    assert overall.recall == pytest.approx(1 / 2)
    assert overall.f1 == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert overall.roc_auc == pytest.approx(roc_auc_score(frame["label"], frame["score"]))
    assert overall.brier == pytest.approx(np.mean((frame["score"] - frame["label"]) ** 2))
    south = result.segments["region"]["south"]
    assert south.positives == 0
    assert south.roc_auc is south.average_precision is south.recall is south.f1 is None
    assert south.card_precision_at_k is None
    assert south.precision == 0.0 and south.brier is not None
    assert "| region=south | 2 | 0 | n/a | n/a |" in result.to_markdown()
    assert result.to_dict()["segments"]["region"]["south"]["roc_auc"] is None


def test_bad_input_is_named():
    frame = rows((0, "A", 0.9, 1))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['channel'\]"):
        evaluate(frame.drop(columns=["channel"]), "score", 0.5)
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\]"):
        evaluate(frame.assign(score=np.nan), "score", 0.5)


def test_customer_weighted_auc_and_ap_equal_scikit_learn_with_weights():
    rng = np.random.default_rng(1)
    n, customers = 3000, 300
    labels = (rng.random(n) < 0.05).astype(int)
    scores = np.round(rng.random(n) * 0.5 + labels * 0.3, 2)  # rounded: many ties
    codes = rng.integers(0, customers, n)
    reduced = _RankedScores(labels, scores, codes, customers)
    counts = customer_counts(customers, 3, seed=0)

    auc, ap = reduced.auc_ap(counts)

    for b in range(3):
        weights = counts[b][codes]
        assert auc[b] == pytest.approx(roc_auc_score(labels, scores, sample_weight=weights))
        assert ap[b] == pytest.approx(
            average_precision_score(labels, scores, sample_weight=weights)
        )


def test_paired_bootstrap_is_seeded_and_zero_for_identical_scores():
    rng = np.random.default_rng(2)
    labels = (rng.random(4000) < 0.05).astype(int)
    scores = rng.random(4000) * 0.6 + labels * 0.3
    customers = rng.integers(0, 400, 4000)

    same = paired_bootstrap(labels, scores, scores, customers, resamples=50, seed=0)
    other = rng.random(4000)
    first = paired_bootstrap(labels, scores, other, customers, resamples=50, seed=0)
    again = paired_bootstrap(labels, scores, other, customers, resamples=50, seed=0)

    assert same["all"]["average_precision"].low == same["all"]["average_precision"].high == 0
    assert first == again
    assert first["all"]["roc_auc"].low > 0.1  # far better than random scores, surely
