"""How traffic moves from the serving revision to a new one: blue-green or canary.

A strategy runs inside a rollout (``evergreen.rollout.controller``) once the new revision is
ready; it moves weights and asks for analyses through the ``RolloutRun`` it is given, and
raises ``AnalysisFailed`` when the new revision must not take traffic, after which the
controller rolls back by itself. Keeping and retiring the previous revision is the
controller's job, after ``keep_previous_s``.

- ``BlueGreen``: warm green up with requests straight to its replicas, switch all traffic at
  once, optionally watch it for ``observe_s``, keep blue running for ``keep_previous_s`` (an
  instant rollback), then drain and stop blue.
- ``Canary``: weight steps (e.g. 10 -> 50 -> 100 percent); after each, an analysis window of
  ``step_s`` seconds (errors, p99, scores against the baseline; ``evergreen.rollout.analysis``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol

from evergreen.rollout.analysis import Analysis, AnalysisPolicy


class AnalysisFailed(RuntimeError):
    """The new revision failed an analysis (or its warm-up); the message says why."""

    def __init__(self, message: str, analysis: Analysis | None = None) -> None:
        super().__init__(message)
        self.analysis = analysis


class RolloutRun(Protocol):
    """What a strategy may do during a rollout."""

    def warm_up(self, requests: int) -> None: ...

    def shift(self, weight: int) -> None: ...

    def analyze(self, seconds: float, policy: AnalysisPolicy) -> Analysis: ...

    def switched(self) -> None: ...


@dataclass(frozen=True)
class BlueGreen:
    """Start green, warm it up, switch 100 %, keep blue for a window, then retire it."""

    kind: ClassVar[str] = "blue-green"
    warmup_requests: int = 20
    observe_s: float = 0.0
    keep_previous_s: float = 60.0
    drain_s: float = 2.0
    analysis: AnalysisPolicy = field(default_factory=AnalysisPolicy)

    def run(self, run: RolloutRun) -> None:
        run.warm_up(self.warmup_requests)
        run.shift(100)
        if self.observe_s > 0:
            run.analyze(self.observe_s, self.analysis)
        run.switched()

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.kind, **asdict(self)}


@dataclass(frozen=True)
class Canary:
    """Weight steps with an analysis after each; the last step is 100 %."""

    kind: ClassVar[str] = "canary"
    steps: tuple[int, ...] = (10, 50, 100)
    step_s: float = 30.0
    warmup_requests: int = 5
    keep_previous_s: float = 0.0
    drain_s: float = 2.0
    analysis: AnalysisPolicy = field(default_factory=AnalysisPolicy)

    def __post_init__(self) -> None:
        steps = list(self.steps)
        if not steps or steps != sorted(set(steps)) or steps[0] < 1 or steps[-1] != 100:
            raise ValueError(
                f"canary steps must rise strictly from at least 1 to 100 percent, got {steps}"
            )

    def run(self, run: RolloutRun) -> None:
        run.warm_up(self.warmup_requests)
        for weight in self.steps:
            run.shift(weight)
            run.analyze(self.step_s, self.analysis)
        run.switched()

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.kind, **asdict(self)}


Strategy = BlueGreen | Canary


def strategy_named(name: str, **options: Any) -> Strategy:
    """``blue-green`` or ``canary`` with the given options."""
    kinds = {BlueGreen.kind: BlueGreen, Canary.kind: Canary}
    if name not in kinds:
        raise ValueError(f"unknown strategy {name!r}; use blue-green or canary")
    return kinds[name](**options)
