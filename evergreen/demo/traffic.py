"""A day's payments replayed through the router, each once, at a bounded rate, in the
background while the pipeline works; every failed request is kept with its reason. Each card's
payments go from one client in time order, as a card's authorisations arrive: its request-time
windows then see every earlier payment of the card."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class ReplayResult:
    """What a replay sent and what went wrong."""

    sent: int = 0
    failed: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)


class DayReplay:
    """Sends ``transactions`` to ``url``/predict from ``threads`` clients at ``rate`` per second."""

    def __init__(self, url: str, transactions: list[dict], rate: float, threads: int = 4):
        self.url = url.rstrip("/") + "/predict"
        self.transactions, self.rate, self.threads = transactions, rate, threads
        self.result = ReplayResult()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def start(self) -> DayReplay:
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def join(self) -> ReplayResult:
        """Wait until every transaction was sent and answered."""
        for worker in self._workers:
            worker.join()
        return self.result

    def _run(self, index: int) -> None:
        interval = self.threads / self.rate
        next_at = time.monotonic() + index / self.rate
        with httpx.Client(timeout=30.0) as client:
            mine = [t for t in self.transactions if t["customer_id"] % self.threads == index]
            for tx in mine:
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at += interval
                self._send(client, tx)

    def _send(self, client: httpx.Client, tx: dict) -> None:
        began = time.perf_counter()
        try:
            response = client.post(self.url, json=tx)
            error = "" if response.status_code == 200 else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.result.sent += 1
            self.result.latencies_s.append(time.perf_counter() - began)
            if error:
                self.result.failed.append(f"transaction {tx['transaction_id']}: {error}")
