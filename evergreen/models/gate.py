"""The champion/challenger gate: a candidate's scores against the champion's, rule by rule.

Rules, each reported in words with its numbers:

1. Floors: the candidate's ROC AUC and average precision (AP) are at least absolute minimums.
2. Calibration: its expected calibration error (ECE) is at most a bound.
3. Overall non-inferiority (only with a champion): for AUC and AP, a paired bootstrap interval of
   candidate - champion (customers resampled, see ``bootstrap.py``); the candidate is CLEARLY
   WORSE when the whole interval lies below -margin (its upper bound < -margin).
4. Segment non-inferiority (only with a champion): the same for each region, channel and card
   type value with at least ``min_segment_positives`` frauds in the window (fewer are too noisy to
   judge, and are listed as not judged), with wider margins.
5. Improvement (only with a champion): the candidate's AP point estimate is >= the champion's.

Outcome: any failure of rules 1-4 -> ``reject``. No champion -> ``promote`` (the first model is
promoted if it passes floors and calibration). Otherwise rule 5 decides the "within noise" case:
``promote`` when the candidate is at least as good on AP (ties go to the newer model: it was
trained on fresher data), else ``challenger`` (kept, not served; a later candidate or a manual
``evergreen promote`` may still win).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from evergreen.metadata import markdown_table
from evergreen.models.bootstrap import DeltaInterval, paired_bootstrap
from evergreen.models.gate_policy import GatePolicy
from evergreen.models.metrics import Metrics, slice_metrics

Outcome = Literal["promote", "challenger", "reject"]
_NAMES = {"roc_auc": "ROC AUC", "average_precision": "average precision"}
_TITLES = {"roc_auc": "ROC AUC", "average_precision": "Average precision"}


@dataclass(frozen=True)
class RuleResult:
    """One rule: what was checked, its numbers and whether it passed, in words."""

    name: str
    passed: bool
    numbers: dict = field(default_factory=dict)
    text: str = ""


@dataclass(frozen=True)
class Verdict:
    """The gate's outcome and every rule that led to it."""

    outcome: Outcome
    rules: list[RuleResult]
    summary: str

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.rules if not r.passed]

    def to_dict(self) -> dict:
        return {
            "outcome": self.outcome,
            "summary": self.summary,
            "rules": [asdict(r) for r in self.rules],
        }

    def to_markdown(self) -> str:
        rows = [[r.name, "pass" if r.passed else "**FAIL**", r.text] for r in self.rules]
        table = markdown_table(["rule", "result", "what was checked"], rows)
        return f"**Outcome: {self.outcome}**. {self.summary}\n\n{table}"


def decide(
    frame: pd.DataFrame,
    candidate_col: str,
    champion_col: str | None,
    policy: GatePolicy | None = None,
    seed: int = 0,
) -> Verdict:
    """Judge the candidate's scores (and the champion's, if any) on the same labelled rows.

    ``frame`` needs label, customer_id, tx_datetime, the policy's segment columns and the score
    columns. ``seed`` fixes the bootstrap."""
    policy = policy or GatePolicy()
    needed = ["label", "customer_id", "tx_datetime", candidate_col, *policy.segments]
    missing = [c for c in [*needed, champion_col] if c is not None and c not in frame.columns]
    if missing:
        raise ValueError(f"The frame to judge lacks column(s) {missing}.")
    if frame.empty:
        raise ValueError("The frame to judge has no rows.")
    # The floors and calibration do not depend on the threshold.
    candidate = slice_metrics(frame, candidate_col, threshold=0.5, k=100)
    rules = _floor_rules(candidate, policy) + [_calibration_rule(candidate, policy)]
    if champion_col is None:
        rules.append(
            RuleResult(
                "champion",
                True,
                {},
                "There is no champion yet: the first model is judged on the floors and "
                "calibration alone.",
            )
        )
        return _verdict(rules, improvement=None)
    intervals, positives = _bootstrap(frame, candidate_col, champion_col, policy, seed)
    rules += _non_inferiority_rules(intervals["all"], policy, "overall", None)
    rules += _segment_rules(intervals, positives, policy)
    improvement = _improvement_rule(intervals["all"]["average_precision"])
    return _verdict([*rules, improvement], improvement=improvement)


def _verdict(rules: list[RuleResult], improvement: RuleResult | None) -> Verdict:
    blocking = [r for r in rules if not r.passed and r is not improvement]
    if blocking:
        names = ", ".join(r.name for r in blocking)
        return Verdict("reject", rules, f"Rejected: {len(blocking)} rule(s) failed ({names}).")
    if improvement is None:
        return Verdict("promote", rules, "Promoted: the first model passes floors and calibration.")
    if improvement.passed:
        return Verdict(
            "promote",
            rules,
            "Promoted: not worse than the champion anywhere judged, and at least as good on "
            "average precision.",
        )
    return Verdict(
        "challenger",
        rules,
        "Kept as challenger: not clearly worse than the champion (within noise), but its "
        "average precision is lower, so the champion keeps serving.",
    )


def _floor_rules(m: Metrics, policy: GatePolicy) -> list[RuleResult]:
    out = []
    for metric, floor in (
        ("roc_auc", policy.min_roc_auc),
        ("average_precision", policy.min_average_precision),
    ):
        value = getattr(m, metric)
        passed = value is not None and value >= floor
        shown = "undefined (no frauds in the window)" if value is None else f"{value:.3f}"
        out.append(
            RuleResult(
                f"floor_{metric}",
                passed,
                {"value": value, "floor": floor, "rows": m.rows, "positives": m.positives},
                f"The candidate's {_NAMES[metric]} on {m.rows:,} held-out transactions "
                f"({m.positives:,} frauds) is {shown}; the floor is {floor:.2f}: "
                f"{'passed' if passed else 'failed'}.",
            )
        )
    return out


def _calibration_rule(m: Metrics, policy: GatePolicy) -> RuleResult:
    passed = m.ece is not None and m.ece <= policy.max_ece
    shown = "undefined" if m.ece is None else f"{m.ece:.4f}"
    return RuleResult(
        "calibration",
        passed,
        {"ece": m.ece, "max_ece": policy.max_ece, "brier": m.brier},
        f"The candidate's expected calibration error (10 equal-width bins) is {shown}; the "
        f"bound is {policy.max_ece:.3f}: {'passed' if passed else 'failed'}.",
    )


def _bootstrap(frame, candidate_col, champion_col, policy, seed):
    labels = frame["label"].to_numpy(dtype=int)
    subsets, positives = {}, {}
    for column in policy.segments:
        for value, index in frame.groupby(column, sort=True, observed=True).indices.items():
            key = f"{column}={value}"
            positives[key] = int(labels[index].sum())
            if positives[key] >= policy.min_segment_positives:
                mask = np.zeros(len(frame), dtype=bool)
                mask[index] = True
                subsets[key] = mask
    intervals = paired_bootstrap(
        labels,
        frame[candidate_col].to_numpy(dtype=float),
        frame[champion_col].to_numpy(dtype=float),
        frame["customer_id"].to_numpy(),
        policy.resamples,
        seed,
        policy.confidence,
        subsets,
    )
    return intervals, positives


def _non_inferiority_rules(
    intervals: dict[str, DeltaInterval], policy: GatePolicy, scope: str, positives: int | None
) -> list[RuleResult]:
    segment = scope != "overall"
    out = []
    for metric, d in intervals.items():
        margin = getattr(policy, f"{'segment_' if segment else ''}margin_{metric}")
        where = f"in segment {scope} ({positives:,} frauds)" if segment else "on all transactions"
        name = f"non_inferior_{metric}" + (f"[{scope}]" if segment else "")
        numbers = {**d.to_dict(), "margin": margin}
        if d.high is None:
            out.append(
                RuleResult(
                    name,
                    True,
                    numbers,
                    f"{_TITLES[metric]} {where} is undefined for one "
                    "of the models (no frauds or no genuine transactions): not judged.",
                )
            )
            continue
        passed = d.high >= -margin
        out.append(
            RuleResult(
                name,
                passed,
                numbers,
                f"{_TITLES[metric]} {where}, candidate minus champion: "
                f"{d.estimate:+.3f} ({d.confidence:.0%} interval {d.low:+.3f} to {d.high:+.3f}, "
                f"{d.resamples} customer resamples). Clearly worse only if the whole interval "
                f"lies below {-margin:+.3f}: "
                + ("passed (not clearly worse)." if passed else "failed (clearly worse)."),
            )
        )
    return out


def _segment_rules(intervals, positives: dict[str, int], policy: GatePolicy) -> list[RuleResult]:
    out = []
    for key, count in positives.items():
        if key in intervals:
            out += _non_inferiority_rules(intervals[key], policy, key, count)
    skipped = {k: n for k, n in positives.items() if k not in intervals}
    if skipped:
        listed = ", ".join(f"{k} ({n})" for k, n in skipped.items())
        out.append(
            RuleResult(
                "segments_not_judged",
                True,
                {"min_positives": policy.min_segment_positives, **skipped},
                f"Segments with fewer than {policy.min_segment_positives} frauds are too noisy "
                f"to judge on their own and were not: {listed}.",
            )
        )
    return out


def _improvement_rule(d: DeltaInterval) -> RuleResult:
    passed = d.estimate is not None and d.estimate >= 0
    shown = "undefined" if d.estimate is None else f"{d.estimate:+.4f}"
    return RuleResult(
        "improvement",
        passed,
        d.to_dict(),
        f"Average precision, candidate minus champion, point estimate {shown}: the candidate "
        + (
            "is at least as good, so it replaces the champion."
            if passed
            else "is lower, so it does not replace the champion."
        ),
    )
