"""The demo's day replay against a real HTTP server: every payment sent once, several at once,
and none before every earlier payment of its card and of its terminal was answered (so the
request-time windows see exactly what the training set computes)."""

import http.server
import json
import random
import threading
import time

import pytest

from evergreen.demo.traffic import DayReplay
from evergreen.ports import free_port


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Records, under one counter, when each request arrived and when it was done."""

    seen: list[tuple[int, int, list[int]]] = []  # (arrived, done, transaction ids)
    counter = 0
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            arrived = type(self).counter = type(self).counter + 1
        time.sleep(random.uniform(0, 0.004))  # replicas answer in their own time
        ids = [t["transaction_id"] for t in body.get("transactions", [body])]
        with self.lock:
            done = type(self).counter = type(self).counter + 1
            self.seen.append((arrived, done, ids))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    _Recorder.seen, _Recorder.counter = [], 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    server.shutdown()
    server.server_close()


def _day(n: int, cards: int, terminals: int) -> list[dict]:
    rng = random.Random(3)
    return [
        {
            "transaction_id": i,
            "customer_id": rng.randrange(cards),
            "terminal_id": rng.randrange(terminals),
            "amount": 10.0,
            "tx_datetime": f"2018-04-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}",
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("batch", [1, 5])
def test_a_replay_sends_each_payment_once_after_its_cards_and_terminals_earlier_ones(
    recorder, batch
):
    url, seen = recorder
    day = _day(600, cards=60, terminals=12)

    result = DayReplay(url, day, rate=20_000, threads=4, batch=batch).start().join()

    assert (result.sent, result.failed) == (600, [])
    assert sorted(i for _, _, ids in seen for i in ids) == list(range(600))  # each once
    assert result.most_in_flight > 1  # several clients at once, not one after the other
    timing = {i: (arrived, done) for arrived, done, ids in seen for i in ids}
    early = []
    for later in day:
        for earlier in day[: later["transaction_id"]]:
            shares = earlier["customer_id"] == later["customer_id"] or (
                earlier["terminal_id"] == later["terminal_id"]
            )
            same_request = timing[earlier["transaction_id"]] == timing[later["transaction_id"]]
            answered_before = (
                timing[earlier["transaction_id"]][1] < timing[later["transaction_id"]][0]
            )
            if shares and not same_request and not answered_before:
                early.append((earlier["transaction_id"], later["transaction_id"]))
    assert early == []
