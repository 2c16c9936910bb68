"""A replica's Prometheus ``/metrics``: requests, errors, latency histogram, in flight.

BentoML's HTTP middleware exports, per endpoint and response code, the counter
``<namespace>_request_total``, the histogram ``<namespace>_request_duration_seconds`` and the
gauge ``<namespace>_request_in_progress``; the namespace is ``bentoml_service`` unless the
service sets one (the fraud bento uses ``evergreen``), so names are matched by suffix. Counters
start again at zero when a replica restarts: a window's delta treats a drop as a restart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

PREDICT = "/predict"


@dataclass(frozen=True)
class EndpointStats:
    """Cumulative counts of one endpoint (one replica, or the sum of several)."""

    requests: float = 0.0
    errors: float = 0.0  # 5xx answers
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound -> cumulative count
    in_progress: float = 0.0

    def __add__(self, other: EndpointStats) -> EndpointStats:
        bounds = set(self.buckets) | set(other.buckets)
        return EndpointStats(
            self.requests + other.requests,
            self.errors + other.errors,
            {b: self.buckets.get(b, 0.0) + other.buckets.get(b, 0.0) for b in bounds},
            self.in_progress + other.in_progress,
        )

    def since(self, before: EndpointStats | None) -> EndpointStats:
        """What happened between ``before`` and now (all of it if the counters restarted)."""
        if before is None or self.requests < before.requests:
            return self
        return EndpointStats(
            self.requests - before.requests,
            self.errors - before.errors,
            {b: c - before.buckets.get(b, 0.0) for b, c in self.buckets.items()},
            self.in_progress,
        )

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def quantile_ms(self, q: float) -> float:
        """The q-quantile of latency in milliseconds, interpolated within its bucket (NaN
        without requests)."""
        return histogram_quantile(self.buckets, q) * 1000.0


def histogram_quantile(buckets: dict[float, float], q: float) -> float:
    """Prometheus's ``histogram_quantile``: linear interpolation inside the bucket holding the
    q-th observation; the +Inf bucket answers its lower bound."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return math.nan
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def parse_metrics(text: str, endpoint: str = PREDICT) -> EndpointStats:
    """The endpoint's counts from a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    requests = errors = in_progress = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("endpoint") != endpoint:
                continue
            if sample.name.endswith("_request_total"):
                requests += sample.value
                if str(sample.labels.get("http_response_code", "")).startswith("5"):
                    errors += sample.value
            elif sample.name.endswith("_request_duration_seconds_bucket"):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name.endswith("_request_in_progress"):
                in_progress += sample.value
    return EndpointStats(requests, errors, buckets, in_progress)


def scrape(base_url: str, endpoint: str = PREDICT, timeout_s: float = 3.0) -> EndpointStats | None:
    """A replica's counts now; None if it does not answer."""
    try:
        response = httpx.get(f"{base_url}/metrics", timeout=timeout_s)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return parse_metrics(response.text, endpoint)


def in_flight(base_url: str) -> float:
    """Requests to ``/predict`` the replica is answering now (0 if it does not answer)."""
    stats = scrape(base_url)
    return stats.in_progress if stats else 0.0


def total(stats: Iterable[EndpointStats]) -> EndpointStats:
    """The sum over replicas."""
    result = EndpointStats()
    for s in stats:
        result = result + s
    return result
