"""Judging a canary against the revision it would replace, over one window of traffic.

Three questions, each with a threshold in ``AnalysisPolicy``:

- **errors**: the canary's share of 5xx answers must stay within ``max_error_rate``;
- **latency**: its p99 must be within the absolute budget ``max_p99_ms`` OR within
  ``p99_factor`` times the baseline's p99 over the same window (so a machine that is slow for
  everyone fails nobody);
- **scores**: its fraud-probability distribution must not differ from the baseline's: the
  two-sample Kolmogorov-Smirnov test fails the canary only when the difference is both
  significant (p < ``ks_alpha``) and large (statistic > ``max_ks_statistic``). The population
  stability index is reported alongside; with few scores it is biased upwards, so it informs
  and does not decide.

A window with fewer than ``min_requests`` canary requests cannot show an error rate; it is
judged on what there is and says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class AnalysisPolicy:
    """Thresholds of a canary analysis."""

    max_error_rate: float = 0.01
    max_p99_ms: float = 100.0
    p99_factor: float = 2.0
    min_requests: int = 20
    ks_alpha: float = 0.001
    max_ks_statistic: float = 0.2
    # Two sound models differ in the shape of their scores (that is why one replaces the
    # other), but both are calibrated to the fraud rate: a shift is gross only when the
    # distributions differ (KS) AND the mean score moves by more than this factor.
    max_mean_ratio: float = 2.0
    min_score_samples: int = 30
    probe_requests: int = 100


@dataclass(frozen=True)
class RevisionWindow:
    """What one revision did during the window (from its replicas' metrics)."""

    revision: str
    model_version: str
    requests: int
    errors: int
    p99_ms: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class ScoreComparison:
    """The canary's scores against the baseline's."""

    source: str  # "prediction log" or "probe"
    canary_n: int
    baseline_n: int
    canary_mean: float
    baseline_mean: float
    ks_statistic: float
    ks_pvalue: float
    psi: float
    passed: bool


@dataclass(frozen=True)
class Analysis:
    """The verdict on one window."""

    passed: bool
    reasons: list[str]
    canary: RevisionWindow
    baseline: RevisionWindow | None
    scores: ScoreComparison | None
    window_s: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["canary"]["error_rate"] = self.canary.error_rate
        if self.baseline is not None:
            data["baseline"]["error_rate"] = self.baseline.error_rate
        return _finite(data)

    def summary(self) -> str:
        """One line: the verdict and its numbers."""
        c = self.canary
        parts = [f"{c.requests} req, {c.error_rate:.1%} errors, p99 {c.p99_ms:.0f} ms"]
        if self.scores is not None:
            s = self.scores
            parts.append(f"KS {s.ks_statistic:.2f} (p={s.ks_pvalue:.2g}, {s.source})")
        verdict = "passed" if self.passed else "FAILED: " + "; ".join(self.reasons)
        return f"{verdict} [{', '.join(parts)}]"


def _finite(value: Any) -> Any:
    """NaN and infinities as None (JSON has no form for them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected``, on the expected
    distribution's deciles (empty bins floored at 1e-4)."""
    if len(expected) == 0 or len(actual) == 0:
        return math.nan
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        edges = np.array([expected.min() - 1e-9, expected.max() + 1e-9])
    edges[0], edges[-1] = -np.inf, np.inf
    e = np.histogram(expected, edges)[0] / len(expected)
    a = np.histogram(actual, edges)[0] / len(actual)
    e, a = np.clip(e, 1e-4, None), np.clip(a, 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


def compare_scores(
    canary: list[float], baseline: list[float], policy: AnalysisPolicy, source: str
) -> ScoreComparison:
    """KS test and PSI of the canary's scores against the baseline's."""
    from scipy.stats import ks_2samp

    c, b = np.asarray(canary, dtype=float), np.asarray(baseline, dtype=float)
    test = ks_2samp(c, b)
    statistic, pvalue = float(test.statistic), float(test.pvalue)
    ratio = _mean_ratio(float(c.mean()), float(b.mean()))
    differs = (
        pvalue < policy.ks_alpha
        and statistic > policy.max_ks_statistic
        and ratio > policy.max_mean_ratio
    )
    return ScoreComparison(
        source=source,
        canary_n=len(c),
        baseline_n=len(b),
        canary_mean=float(c.mean()),
        baseline_mean=float(b.mean()),
        ks_statistic=statistic,
        ks_pvalue=pvalue,
        psi=psi(b, c),
        passed=not differs,
    )


def _mean_ratio(canary_mean: float, baseline_mean: float) -> float:
    """How many times apart the two mean scores are (>= 1; inf when one is zero)."""
    low, high = sorted((canary_mean, baseline_mean))
    return high / low if low > 0 else (math.inf if high > 0 else 1.0)


def judge(
    canary: RevisionWindow,
    baseline: RevisionWindow | None,
    scores: ScoreComparison | str | None,
    policy: AnalysisPolicy,
    window_s: float,
) -> Analysis:
    """The verdict on a canary window; ``scores`` is the comparison, or why there is none."""
    reasons, notes = [], []
    if canary.requests < policy.min_requests:
        notes.append(f"only {canary.requests} canary requests (< {policy.min_requests})")
    if canary.errors and canary.error_rate > policy.max_error_rate:
        reasons.append(
            f"error rate {canary.error_rate:.1%} > {policy.max_error_rate:.1%} "
            f"({canary.errors} of {canary.requests})"
        )
    reference = baseline.p99_ms if baseline is not None else math.nan
    slow_absolute = canary.p99_ms > policy.max_p99_ms
    slow_relative = not math.isfinite(reference) or canary.p99_ms > policy.p99_factor * reference
    if math.isfinite(canary.p99_ms) and slow_absolute and slow_relative:
        reasons.append(
            f"p99 {canary.p99_ms:.0f} ms > {policy.max_p99_ms:.0f} ms and > "
            f"{policy.p99_factor:g} x baseline ({reference:.0f} ms)"
        )
    if not isinstance(scores, ScoreComparison):
        notes.append(scores or "scores not compared")
        scores = None
    elif not scores.passed:
        against = baseline.model_version if baseline else "the baseline"
        reasons.append(
            f"score distribution differs from {against}: KS {scores.ks_statistic:.2f} > "
            f"{policy.max_ks_statistic} (p={scores.ks_pvalue:.2g}) and mean "
            f"{scores.canary_mean:.3f} vs {scores.baseline_mean:.3f} (more than "
            f"{policy.max_mean_ratio:g}x apart)"
        )
    return Analysis(not reasons, reasons, canary, baseline, scores, window_s, notes)
