"""Properties of the paired, customer-clustered bootstrap over generated evaluation sets
(hypothesis): what the gate's intervals must do whatever the data.

- Swapping the two models negates every interval (the spread is the difference's, paired).
- Only the ranking matters: a strictly increasing transform of a model's scores changes nothing.
- The order of the rows changes nothing (the resample unit is the customer, not the row).
- The point estimate is scikit-learn's difference on the rows as they are; a model against
  itself is 0 everywhere; a segment of every row is the whole.

Derandomized and bounded in examples (and in rows: a handful of customers makes the tie and
one-class corner cases common, which a real evaluation set rarely shows).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from evergreen.models.bootstrap import METRICS, paired_bootstrap

PROPERTY = settings(max_examples=120, deadline=None, derandomize=True, database=None)
RESAMPLES = 40


@st.composite
def evaluation_sets(draw):
    """Labels, two models' scores (coarse: many ties), and each row's customer."""
    n = draw(st.integers(2, 60))
    rows = st.lists(st.integers(0, 1), min_size=n, max_size=n)
    labels = np.array(draw(rows))
    scores = st.lists(st.integers(0, 10), min_size=n, max_size=n)
    candidate = np.array(draw(scores)) / 10
    champion = np.array(draw(scores)) / 10
    customers = np.array(draw(st.lists(st.integers(0, 7), min_size=n, max_size=n))) * 1000
    return labels, candidate, champion, customers


def _run(labels, candidate, champion, customers, seed, subsets=None):
    result = paired_bootstrap(
        labels, candidate, champion, customers, RESAMPLES, seed, subsets=subsets
    )
    return {
        (name, metric): (d.estimate, d.low, d.high, d.resamples)
        for name, intervals in result.items()
        for metric, d in intervals.items()
    }


def _same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        left, right = a[key], b[key]
        assert (left[0] is None) == (right[0] is None), key
        if left[0] is not None:
            assert left == pytest.approx(right, rel=1e-9, abs=1e-12), key


@PROPERTY
@given(data=evaluation_sets(), seed=st.integers(0, 2**32 - 1))
def test_swapping_the_models_negates_every_interval(data, seed):
    labels, candidate, champion, customers = data
    forward = _run(labels, candidate, champion, customers, seed)
    backward = _run(labels, champion, candidate, customers, seed)
    negated = {
        key: (None, None, None, n) if est is None else (-est, -high, -low, n)
        for key, (est, low, high, n) in forward.items()
    }
    _same(backward, negated)
    for est, low, high, _ in forward.values():
        assert est is None or low <= high


@PROPERTY
@given(data=evaluation_sets(), seed=st.integers(0, 2**32 - 1))
def test_only_the_ranking_of_the_scores_matters(data, seed):
    labels, candidate, champion, customers = data
    stretched = candidate**3 * 0.5 + 0.25  # strictly increasing on [0, 1]: ties stay ties
    _same(
        _run(labels, stretched, champion, customers, seed),
        _run(labels, candidate, champion, customers, seed),
    )


@PROPERTY
@given(data=evaluation_sets(), seed=st.integers(0, 2**32 - 1), order=st.randoms())
def test_the_order_of_the_rows_changes_nothing(data, seed, order):
    labels, candidate, champion, customers = data
    shuffled = np.array(order.sample(range(len(labels)), len(labels)))
    _same(
        _run(labels[shuffled], candidate[shuffled], champion[shuffled], customers[shuffled], seed),
        _run(labels, candidate, champion, customers, seed),
    )


@PROPERTY
@given(data=evaluation_sets(), seed=st.integers(0, 2**32 - 1))
def test_point_estimates_are_scikit_learns_differences_and_a_model_ties_itself(data, seed):
    labels, candidate, champion, customers = data
    every_row = {"every_row": np.ones(len(labels), dtype=bool)}
    result = _run(labels, candidate, champion, customers, seed, subsets=every_row)
    both_classes = 0 < labels.sum() < len(labels)
    for metric, score in zip(METRICS, (roc_auc_score, average_precision_score), strict=True):
        estimate = result[("all", metric)][0]
        assert result[("every_row", metric)] == result[("all", metric)]
        if metric == "roc_auc" and not both_classes or not labels.any():
            assert estimate is None  # undefined: no fraud, or no genuine transaction
            continue
        expected = score(labels, candidate) - score(labels, champion)
        assert estimate == pytest.approx(expected, abs=1e-12)
    itself = _run(labels, candidate, candidate, customers, seed)
    for est, low, high, _ in itself.values():
        assert est is None or est == low == high == 0.0
