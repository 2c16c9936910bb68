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
    """Sends ``transactions`` to ``url``/predict from ``threads`` clients at ``rate`` requests
    per second, one per request or in batches of ``batch``."""

    def __init__(
        self, url: str, transactions: list[dict], rate: float, threads: int = 4, batch: int = 1
    ):
        self.url = url.rstrip("/") + "/predict"
        self.rate, self.threads = rate, threads
        # Each client's share: whole cards, in time order; one request per transaction, or per
        # ``batch`` of them ({"transactions": [...]}).
        self.requests = [
            _batched([t for t in transactions if t["customer_id"] % threads == index], batch)
            for index in range(threads)
        ]
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
            for tx in self.requests[index]:
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
            self.result.sent += len(tx.get("transactions", [tx]))
            self.result.latencies_s.append(time.perf_counter() - began)
            if error:
                first = tx.get("transactions", [tx])[0]["transaction_id"]
                self.result.failed.append(f"request from transaction {first}: {error}")


def _batched(transactions: list[dict], batch: int) -> list[dict]:
    """The transactions as request bodies: each alone, or ``batch`` to a request."""
    if batch <= 1:
        return transactions
    return [
        {"transactions": transactions[i : i + batch]} for i in range(0, len(transactions), batch)
    ]
