"""A paired, customer-clustered bootstrap of ROC AUC and average precision differences.

Transactions of one card are not independent (a compromised card makes many frauds), so the
unit resampled is the CUSTOMER: each resample draws as many customers as there are, with
replacement, and every transaction of a customer drawn m times counts m times. Both models are
scored on the same resample (paired), so the spread is that of the DIFFERENCE. Days would be the
natural unit for drift, but an evaluation window has only about 7 of them: too few to resample.

Speed: a resample only changes customer weights, so each model's scores are ranked once and
reduced to a sparse count matrix; every resample's AUC and AP are then one sparse product and
a few cumulative sums over the frauds, vectorised over resamples.
The results equal scikit-learn's ``roc_auc_score`` / ``average_precision_score`` with
``sample_weight`` = each row's customer count (ties included), which the tests assert.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRICS = ("roc_auc", "average_precision")
_CHUNK = 50  # resamples scored together: bounds memory to 50 x rows floats


@dataclass(frozen=True)
class DeltaInterval:
    """candidate - champion of one metric: the point estimate and a percentile interval."""

    metric: str
    estimate: float | None
    low: float | None
    high: float | None
    resamples: int
    confidence: float

    def to_dict(self) -> dict:
        return {
            "metric": self.metric,
            "delta": self.estimate,
            "ci_low": self.low,
            "ci_high": self.high,
            "resamples": self.resamples,
            "confidence": self.confidence,
        }


def customer_counts(n_customers: int, resamples: int, seed: int) -> np.ndarray:
    """How often each customer is drawn in each resample (resamples x customers)."""
    rng = np.random.default_rng(seed)
    counts = np.empty((resamples, n_customers), dtype=np.float64)
    for b in range(resamples):
        counts[b] = np.bincount(rng.integers(0, n_customers, n_customers), minlength=n_customers)
    return counts


class _RankedScores:
    """One model's scores on one set of rows, ranked once and reduced so that AUC and AP under
    any customer weighting need only (a) each fraud's weight and (b) the weight of genuine
    transactions ranked above each fraud's tie group (and through it). (b) is a cumulative sum
    over the stretches of the ranking between frauds: a sparse (stretch x customer) count
    matrix times the customer counts."""

    def __init__(self, labels: np.ndarray, scores: np.ndarray, codes: np.ndarray, n: int):
        from scipy.sparse import csr_matrix

        order = np.argsort(-scores, kind="stable")  # highest score first
        ranked, codes, fraud = scores[order], codes[order], labels[order] == 1
        starts = np.r_[True, ranked[1:] != ranked[:-1]] if len(ranked) else np.zeros(0, bool)
        group = np.cumsum(starts) - 1
        first = np.flatnonzero(starts)
        after_last = np.r_[first[1:], len(ranked)]
        at = np.flatnonzero(fraud)
        tie_start, tie_end = first[group[at]], after_last[group[at]]
        bounds = np.unique(np.r_[tie_start, tie_end])
        genuine = np.flatnonzero(~fraud)
        stretch = np.searchsorted(bounds, genuine, side="right")  # first bound after the row
        self.stretches = csr_matrix(
            (np.ones(len(genuine)), (stretch, codes[genuine])), shape=(len(bounds) + 1, n)
        )
        self.fraud_codes = codes[at]
        self.ge_bound = np.searchsorted(bounds, tie_end)  # genuine ranked through the tie
        self.gt_bound = np.searchsorted(bounds, tie_start)  # genuine ranked above the tie
        self.frauds_through = np.searchsorted(at, tie_end)  # frauds ranked through the tie

    def auc_ap(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ROC AUC and AP for each row of customer ``counts``; NaN where undefined."""
        cum_neg = np.cumsum((self.stretches @ counts.T).T, axis=1)
        weight = counts[:, self.fraud_codes]  # each fraud's weight
        cum_pos = np.hstack([np.zeros((len(counts), 1)), np.cumsum(weight, axis=1)])
        total_pos, total_neg = cum_pos[:, -1], cum_neg[:, -1]
        pos_ge = cum_pos[:, self.frauds_through]
        neg_ge, neg_gt = cum_neg[:, self.ge_bound], cum_neg[:, self.gt_bound]
        flagged = pos_ge + neg_ge
        precision = np.divide(pos_ge, flagged, out=np.zeros_like(pos_ge), where=flagged > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ap = (weight * precision).sum(axis=1) / total_pos
            # A fraud beats the genuine ones ranked below it and ties half with equal ones.
            below = total_neg[:, None] - 0.5 * (neg_ge + neg_gt)
            auc = (weight * below).sum(axis=1) / (total_pos * total_neg)
        ap[total_pos <= 0] = np.nan
        auc[(total_pos <= 0) | (total_neg <= 0)] = np.nan
        return auc, ap


def paired_bootstrap(
    labels: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray,
    customers: np.ndarray,
    resamples: int,
    seed: int,
    confidence: float = 0.95,
    subsets: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, DeltaInterval]]:
    """Intervals of candidate - champion for AUC and AP, on all rows ("all") and on each
    boolean row mask in ``subsets`` (segments), from the SAME customer resamples."""
    labels = np.asarray(labels, dtype=int)
    codes, uniques = _factorize(np.asarray(customers))
    counts = customer_counts(len(uniques), resamples, seed)
    masks = {"all": np.ones(len(labels), dtype=bool), **(subsets or {})}
    out: dict[str, dict[str, DeltaInterval]] = {}
    for name, mask in masks.items():
        # Only the customers with rows in the mask matter: index them densely.
        local, present = _factorize(codes[mask])
        models = [
            _RankedScores(labels[mask], np.asarray(s, dtype=float)[mask], local, len(present))
            for s in (candidate, champion)
        ]
        point = _difference(models, np.ones((1, len(present))))
        chunks = [
            _difference(models, counts[start : start + _CHUNK, present])
            for start in range(0, resamples, _CHUNK)
        ]
        out[name] = {
            metric: _interval(
                metric, point[i][0], np.concatenate([c[i] for c in chunks]), confidence
            )
            for i, metric in enumerate(METRICS)
        }
    return out


def _difference(models, counts) -> list[np.ndarray]:
    """candidate - champion of (AUC, AP) for each row of ``counts``."""
    (auc_c, ap_c), (auc_b, ap_b) = (m.auc_ap(counts) for m in models)
    return [auc_c - auc_b, ap_c - ap_b]


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniques, codes = np.unique(values, return_inverse=True)
    return codes.ravel(), uniques


def _interval(metric: str, point: float, values: np.ndarray, confidence: float) -> DeltaInterval:
    values = values[np.isfinite(values)]
    if not np.isfinite(point) or len(values) == 0:
        return DeltaInterval(metric, None, None, None, len(values), confidence)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return DeltaInterval(metric, float(point), float(low), float(high), len(values), confidence)
