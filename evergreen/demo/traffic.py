"""A day's payments replayed through the router, each once, at a bounded rate, in the
background while the pipeline works; every failed request is kept with its reason.

The payments go in the day's time order, as a bank's authorisations arrive, from several
clients at once, with one rule: a request is sent only once every earlier request of its cards
and of its terminals has been answered. The request-time windows count the events the state
holds before each transaction's time, so each payment then sees exactly the earlier payments of
its card and terminal, as the training set computes them, whichever client sends what (a plain
split by card let one client's terminal events trail another's)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx

from evergreen.serving.client import post_prediction

# How far past the oldest unsent request a free client looks for one it may send: bounds the
# scan, and keeps the replay close to time order.
LOOKAHEAD = 64


@dataclass
class ReplayResult:
    """What a replay sent and what went wrong."""

    sent: int = 0
    failed: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    most_in_flight: int = 0  # the most requests that were on their way at once
    torn_retries: int = 0  # answers cut off after their headers, sent again (serving.client)


class DayReplay:
    """Sends ``transactions`` (in time order) to ``url``/predict from ``threads`` clients at
    ``rate`` requests per second, one per request or in batches of ``batch``."""

    def __init__(
        self, url: str, transactions: list[dict], rate: float, threads: int = 4, batch: int = 1
    ):
        self.url = url.rstrip("/") + "/predict"
        self.rate, self.threads = rate, threads
        self.requests = _batched(transactions, batch)
        self.result = ReplayResult()
        self._pending = list(range(len(self.requests)))  # not yet taken, in time order
        self._busy_cards: set[int] = set()  # of requests on their way
        self._busy_terminals: set[int] = set()
        self._in_flight = 0
        self._next_at = 0.0
        self._cond = threading.Condition()
        self._workers: list[threading.Thread] = []

    def start(self) -> DayReplay:
        self._next_at = time.monotonic()
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def join(self) -> ReplayResult:
        """Wait until every transaction was sent and answered."""
        for worker in self._workers:
            worker.join()
        return self.result

    def _run(self) -> None:
        with httpx.Client(timeout=30.0) as client:
            while (taken := self._take()) is not None:
                index, send_at = taken
                time.sleep(max(0.0, send_at - time.monotonic()))
                try:
                    self._send(client, self.requests[index])
                finally:
                    self._release(index)

    def _take(self) -> tuple[int, float] | None:
        """The next request this client may send and when (None: all are taken); waits
        while every candidate has an earlier request of its card or terminal on its way."""
        with self._cond:
            while self._pending:
                position = self._eligible()
                if position is not None:
                    index = self._pending.pop(position)
                    cards, terminals = _entities(self.requests[index])
                    self._busy_cards |= cards
                    self._busy_terminals |= terminals
                    self._in_flight += 1
                    self.result.most_in_flight = max(self.result.most_in_flight, self._in_flight)
                    send_at = max(self._next_at, time.monotonic())  # no catch-up burst
                    self._next_at = send_at + 1.0 / self.rate
                    return index, send_at
                self._cond.wait()
            return None

    def _eligible(self) -> int | None:
        """Position in ``_pending`` of the first request whose cards and terminals have no
        earlier request on its way or still unsent."""
        blocked_cards, blocked_terminals = set(self._busy_cards), set(self._busy_terminals)
        for position, index in enumerate(self._pending[:LOOKAHEAD]):
            cards, terminals = _entities(self.requests[index])
            if not (cards & blocked_cards or terminals & blocked_terminals):
                return position
            blocked_cards |= cards
            blocked_terminals |= terminals
        return None

    def _release(self, index: int) -> None:
        cards, terminals = _entities(self.requests[index])
        with self._cond:
            self._busy_cards -= cards
            self._busy_terminals -= terminals
            self._in_flight -= 1
            self._cond.notify_all()

    def _send(self, client: httpx.Client, tx: dict) -> None:
        began = time.perf_counter()
        torn = 0
        try:
            response, torn = post_prediction(client, self.url, tx)
            error = "" if response.status_code == 200 else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        with self._cond:
            self.result.torn_retries += torn
            self.result.sent += len(tx.get("transactions", [tx]))
            self.result.latencies_s.append(time.perf_counter() - began)
            if error:
                first = tx.get("transactions", [tx])[0]["transaction_id"]
                self.result.failed.append(f"request from transaction {first}: {error}")


def _entities(request: dict) -> tuple[set[int], set[int]]:
    """The cards and the terminals of a request body."""
    transactions = request.get("transactions", [request])
    return {t["customer_id"] for t in transactions}, {t["terminal_id"] for t in transactions}


def _batched(transactions: list[dict], batch: int) -> list[dict]:
    """The transactions as request bodies: each alone, or ``batch`` to a request."""
    if batch <= 1:
        return transactions
    return [
        {"transactions": transactions[i : i + batch]} for i in range(0, len(transactions), batch)
    ]
