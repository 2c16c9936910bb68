"""A bounded load loop on the serving address, and the transactions it sends.

``LoadLoop(url, rate)`` sends ``POST /predict`` at a steady rate from a few threads (each with
its own keep-alive connection, as real clients have) until stopped, and records every request:
when it started, how long it took, its status and which model version answered. A request that
got no HTTP answer (refused, reset, timed out) has status -1; an answer torn after its headers
is sent once more (``evergreen.serving.client``) and counted in ``torn_retries``. The tests
assert on ``failed()``; the benchmark reads latencies per phase.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import numpy as np

from evergreen.serving.client import post_prediction

if TYPE_CHECKING:
    from evergreen.settings import EvergreenSettings

REGIONS = ("north", "south", "east", "west", "centre")
CHANNELS = ("pos", "web", "mobile")
CARD_TYPES = ("debit", "credit", "prepaid")


def synthetic_transactions(
    n: int, seed: int, at: dt.datetime | None = None, entity_base: int = 0
) -> list[dict]:
    """``n`` valid request bodies (one transaction each), seeded; amounts log-normal; times in
    the hour before ``at`` (default: now). ``entity_base``: added to the card and terminal ids,
    so a heartbeat can use cards and terminals no real payment has (their request-time windows
    then never mix with real ones)."""
    rng = random.Random(seed)
    now = (at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0, tzinfo=None)
    return [
        {
            "transaction_id": 10**9 + seed * 10**6 + i,
            "customer_id": entity_base + rng.randrange(5000),
            "terminal_id": entity_base + rng.randrange(10000),
            "amount": round(rng.lognormvariate(4.0, 0.8), 2),
            "tx_datetime": (now - dt.timedelta(seconds=rng.randrange(3600))).isoformat(),
            "region": rng.choice(REGIONS),
            "channel": rng.choice(CHANNELS),
            "card_type": rng.choice(CARD_TYPES),
        }
        for i in range(n)
    ]


# Cards and terminals no real payment has: the probes', warm-ups' and heartbeat's payments then
# never count in a real card's request-time windows.
PROBE_ENTITY_BASE = 10**12


def probe_transactions(settings: EvergreenSettings, n: int, seed: int) -> list[dict]:
    """``n`` synthetic payments for a warm-up or a probe, on cards and terminals of their own,
    in the hour before the data's current time (the request-time state's newest event, which
    bounds a request's timestamp; the wall clock when the state holds none)."""
    return synthetic_transactions(
        n, seed, at=state_data_time(settings), entity_base=PROBE_ENTITY_BASE
    )


def state_data_time(settings: EvergreenSettings) -> dt.datetime | None:
    """The request-time state's newest event time, or None (no state, or a store without
    Evergreen's state table)."""
    from evergreen.features.feast_client import repo_config
    from evergreen.features.sqlite_online_store import realtime_state_of

    try:
        state = realtime_state_of(repo_config(settings))
        try:
            return state.data_time()
        finally:
            state.close()
    except Exception:  # noqa: BLE001 - no state to align with: the wall clock will do
        return None


def prediction_of(body: dict) -> tuple[str | None, float | None]:
    """(model_version, fraud_probability) of a /predict answer (batch or flat shape)."""
    if isinstance(body.get("predictions"), list) and body["predictions"]:
        first = body["predictions"][0]
        return first.get("model_version", body.get("model_version")), first.get("fraud_probability")
    return body.get("model_version"), body.get("fraud_probability")


@dataclass(frozen=True)
class Sample:
    """One request: start (monotonic s), latency (s), status (-1: no answer), version, and how
    many torn answers (cut off after their headers) it was sent again for."""

    started: float
    latency_s: float
    status: int
    model_version: str | None
    error: str = ""
    torn_retries: int = 0


class LoadLoop:
    """Steady ``POST /predict`` traffic from ``threads`` clients at ``rate`` requests/s."""

    def __init__(
        self,
        url: str,
        rate: float = 80.0,
        threads: int = 4,
        seed: int = 0,
        timeout_s: float = 30.0,
        pool: int = 2000,
        payloads: list[dict] | None = None,
    ) -> None:
        self.url = url.rstrip("/") + "/predict"
        self.rate, self.threads, self.timeout_s = rate, threads, timeout_s
        # ``probe_transactions`` for a home whose request-time state bounds the timestamps.
        self.payloads = payloads or synthetic_transactions(pool, seed)
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> LoadLoop:
        self._stop.clear()
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> list[Sample]:
        """Stop sending, wait for requests in flight; returns every sample."""
        self._stop.set()
        for worker in self._workers:
            worker.join(self.timeout_s + 5)
        self._workers.clear()
        return self.samples

    def __enter__(self) -> LoadLoop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, index: int) -> None:
        interval = self.threads / self.rate
        next_at = time.monotonic() + index * interval / self.threads
        i = index
        with httpx.Client(timeout=self.timeout_s) as client:
            while not self._stop.is_set():
                pause = next_at - time.monotonic()
                if pause > 0:
                    self._stop.wait(pause)
                next_at = max(next_at + interval, time.monotonic() - interval)
                self._record(self._send(client, self.payloads[i % len(self.payloads)]))
                i += self.threads

    def _send(self, client: httpx.Client, payload: dict) -> Sample:
        began = time.monotonic()
        try:
            response, torn = post_prediction(client, self.url, payload)
        except httpx.HTTPError as error:
            return Sample(began, time.monotonic() - began, -1, None, repr(error))
        latency = time.monotonic() - began
        version = None
        if response.status_code == 200:
            version, _ = prediction_of(response.json())
        error = "" if response.status_code == 200 else response.text[:200]
        return Sample(began, latency, response.status_code, version, error, torn)

    def _record(self, sample: Sample) -> None:
        with self._lock:
            self.samples.append(sample)

    def mark(self) -> float:
        """A point in this loop's clock, to slice samples by phase."""
        return time.monotonic()

    def between(self, start: float, end: float | None = None) -> list[Sample]:
        """Samples that started in [start, end)."""
        with self._lock:
            samples = list(self.samples)
        return [s for s in samples if s.started >= start and (end is None or s.started < end)]

    def failed(self, samples: list[Sample] | None = None) -> list[Sample]:
        """Samples without a 200 answer."""
        return [s for s in (self.samples if samples is None else samples) if s.status != 200]


def p99_ms(samples: list[Sample]) -> float:
    """The 99th percentile latency of the samples, in milliseconds."""
    if not samples:
        return float("nan")
    return float(np.percentile([s.latency_s for s in samples], 99) * 1000)
