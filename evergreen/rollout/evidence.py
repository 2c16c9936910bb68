"""Gathering the evidence of an analysis window: metrics deltas, logged scores, probes.

``AnalysisWindow`` snapshots every replica's ``/metrics`` of the canary and the baseline when
the window opens, and marks where each prediction-log file ends; when it closes, it takes the
deltas and the predictions logged meanwhile, by model version. When the log holds too few
scores of either revision (little traffic, or a replica that does not log), the same
transactions (those just logged) are sent straight to one replica of each revision, and those
scores are compared instead.

Only payments scored on all their features judge a model's scores (``judges_scores``). Warm-ups,
probes and the demo's heartbeat pay on cards and terminals no real payment has: their batch
features are missing, and two sound models extrapolate there as they please (a demo's canary
was rolled back on a KS of 0.88 over heartbeat traffic alone, a model the gate had just measured
better on the same week's labels). A window without such payments compares no scores, and says
so: the gate judged the model on labels, and the infra validation that it serves as it scored.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import httpx

from evergreen.rollout.analysis import (
    Analysis,
    AnalysisPolicy,
    RevisionWindow,
    ScoreComparison,
    compare_scores,
    judge,
)
from evergreen.rollout.load import prediction_of, probe_transactions
from evergreen.rollout.metrics import EndpointStats, scrape, total
from evergreen.rollout.state import RevisionState, read_state
from evergreen.rollout.targets import is_ready
from evergreen.settings import EvergreenSettings

REQUEST_FIELDS = (
    "transaction_id",
    "customer_id",
    "terminal_id",
    "amount",
    "tx_datetime",
    "region",
    "channel",
    "card_type",
)


class PredictionLogTail:
    """The lines appended to the prediction log since ``mark``."""

    def __init__(self, predictions_dir: Path) -> None:
        self.predictions_dir = predictions_dir
        self.offsets: dict[Path, int] = {}
        self.since = ""

    def _files(self) -> list[Path]:
        return sorted(self.predictions_dir.glob("date=*/*.jsonl"))

    def mark(self) -> None:
        self.offsets = {p: p.stat().st_size for p in self._files()}
        self.since = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat()

    def records(self) -> list[dict]:
        """Complete records appended since ``mark`` and predicted after it."""
        found = []
        for path in self._files():
            with path.open("rb") as handle:
                handle.seek(self.offsets.get(path, 0))
                text = handle.read().decode(errors="replace")
            for line in text.splitlines(keepends=True):
                if not line.endswith("\n"):
                    break  # a line still being written
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if record.get("predicted_at", "") >= self.since:
                    found.append(record)
        return found


def snapshot(revision: RevisionState) -> dict[tuple[int, int], EndpointStats]:
    """Every answering replica's counts, keyed by (replica, pid): a restart is a new key."""
    stats = {}
    for replica in revision.replicas:
        scraped = scrape(replica.url)
        if scraped is not None:
            pid = replica.process.pid if replica.process else 0
            stats[(replica.index, pid)] = scraped
    return stats


def probe_scores(url: str, payloads: list[dict], timeout_s: float = 10.0) -> list[float]:
    """Scores of ``payloads`` sent one by one to one replica (non-200 answers skipped)."""
    scores = []
    with httpx.Client(timeout=timeout_s) as client:
        for payload in payloads:
            try:
                response = client.post(f"{url}/predict", json=payload)
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                _, score = prediction_of(response.json())
                if score is not None:
                    scores.append(float(score))
    return scores


class AnalysisWindow:
    """Evidence about ``canary`` (and ``baseline``) between ``open`` and ``close``."""

    def __init__(
        self,
        settings: EvergreenSettings,
        canary: str,
        baseline: str | None,
        policy: AnalysisPolicy,
        seed: int = 0,
    ) -> None:
        self.settings, self.canary, self.baseline = settings, canary, baseline
        self.policy, self.seed = policy, seed
        self.tail = PredictionLogTail(settings.predictions_dir)
        self.before: dict[str, dict] = {}
        self.opened = 0.0

    def _revisions(self) -> dict[str, RevisionState]:
        revisions = read_state(self.settings).revisions
        names = [n for n in (self.canary, self.baseline) if n]
        return {n: revisions[n] for n in names}

    def open(self) -> AnalysisWindow:
        self.tail.mark()
        self.before = {n: snapshot(r) for n, r in self._revisions().items()}
        self.opened = time.monotonic()
        return self

    def close(self) -> Analysis:
        revisions = self._revisions()
        windows = {n: self._window(r) for n, r in revisions.items()}
        scores = self._scores(revisions)
        baseline = windows.get(self.baseline) if self.baseline else None
        return judge(
            windows[self.canary], baseline, scores, self.policy, time.monotonic() - self.opened
        )

    def _window(self, revision: RevisionState) -> RevisionWindow:
        before = self.before.get(revision.name, {})
        after = snapshot(revision)
        delta = total(stats.since(before.get(key)) for key, stats in after.items())
        return RevisionWindow(
            revision.name,
            revision.model_version,
            int(delta.requests),
            int(delta.errors),
            delta.quantile_ms(0.99),
        )

    def _scores(self, revisions: dict[str, RevisionState]) -> ScoreComparison | str:
        """The score comparison, or why there is none."""
        if self.baseline is None:
            return "no baseline to compare scores with"
        canary, baseline = revisions[self.canary], revisions[self.baseline]
        if canary.model_version == baseline.model_version:
            return "the same model on both sides: scores not compared"
        records = [r for r in self.tail.records() if judges_scores(r)]
        by_version: dict[str, list[float]] = {}
        for record in records:
            by_version.setdefault(record.get("model_version"), []).append(
                float(record["fraud_probability"])
            )
        logged_c = by_version.get(canary.model_version, [])
        logged_b = by_version.get(baseline.model_version, [])
        enough = self.policy.min_score_samples
        if len(logged_c) >= enough and len(logged_b) >= enough:
            return compare_scores(logged_c, logged_b, self.policy, "prediction log")
        return self._probe(canary, baseline, records)

    def _probe(
        self, canary: RevisionState, baseline: RevisionState, records: list[dict]
    ) -> ScoreComparison | str:
        enough = self.policy.min_score_samples
        if len(records) < enough:
            return (
                f"scores not compared: {len(records)} payment(s) with all their features in the "
                f"window (< {enough}); warm-ups, probes and heartbeats say how models "
                "extrapolate, not how they score"
            )
        n = self.policy.probe_requests
        payloads = [{k: r[k] for k in REQUEST_FIELDS if k in r} for r in records[-n:]]
        urls = [_ready_url(canary), _ready_url(baseline)]
        if None in urls:
            return "scores not compared: no ready replica to probe on one side"
        scores_c, scores_b = probe_scores(urls[0], payloads), probe_scores(urls[1], payloads)
        if min(len(scores_c), len(scores_b)) < enough:
            return f"scores not compared: fewer than {enough} probes answered on one side"
        return compare_scores(scores_c, scores_b, self.policy, "probe")


def judges_scores(record: dict) -> bool:
    """A logged payment scored on all its features: one whose score says how a model scores
    (not a warm-up's, probe's or heartbeat's, on cards and terminals of their own)."""
    return not record.get("features_missing")


def _ready_url(revision: RevisionState) -> str | None:
    for replica in revision.replicas:
        if replica.ready and is_ready(replica):
            return replica.url
    return None


def warm_up(
    settings: EvergreenSettings, revision: RevisionState, requests: int, seed: int
) -> list[str]:
    """Send ``requests`` predictions straight to each replica; returns the problems found
    (a non-200 answer, or another model version than the revision's)."""
    payloads = probe_transactions(settings, requests, seed)
    problems = []
    with httpx.Client(timeout=30.0) as client:
        for replica in revision.replicas:
            for payload in payloads:
                try:
                    response = client.post(f"{replica.url}/predict", json=payload)
                except httpx.HTTPError as error:
                    problems.append(f"replica {replica.index}: {error!r}")
                    continue
                if response.status_code != 200:
                    problems.append(
                        f"replica {replica.index}: HTTP {response.status_code} "
                        f"{response.text[:200]}"
                    )
                    continue
                version, _ = prediction_of(response.json())
                if version != revision.model_version:
                    problems.append(
                        f"replica {replica.index} answered as {version}, "
                        f"expected {revision.model_version}"
                    )
    return problems[:10]
