"""A replica that dies between its headers and its body, behind the real edge and router: the
router relays the headers before the body fails (no proxy can retry after that), and the
client's one resend of the torn answer is what keeps the request. Nothing else is resent."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from evergreen.ports import LOOPBACK, free_port
from evergreen.rollout.caddy import (
    RouterPolicy,
    Upstream,
    edge_config,
    load,
    router_config,
    start_caddy,
    stop_caddy,
)
from evergreen.serving.client import is_torn, post_prediction

BODY = b'{"predictions": []}'
# Each answer closes its connection, and says so: a router that pooled it could send the next
# request down a socket already closed, fail it there and retry it on the next replica in the
# rotation, the torn one, so a resend could be torn again (the likely cause of the one CI
# failure of this test, 2026-12-03; not reproduced here in 15 runs).
CLOSE = b"Connection: close\r\n\r\n"


class Replica:
    """A raw HTTP/1.1 server on loopback answering every ``POST`` in full, or, with ``torn``,
    writing the headers of its answer and closing before the body (a killed replica)."""

    def __init__(self, torn: bool) -> None:
        self.torn, self.posts = torn, 0
        self.port = free_port()
        self._socket = socket.create_server((LOOPBACK, self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            head, body = self._read(conn)
            if head is None:
                return
            if not head.startswith(b"POST"):  # the router's health check
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + CLOSE)
                return
            self.posts += 1
            headers = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            conn.sendall(headers + b"Content-Length: %d\r\n" % len(BODY) + CLOSE)
            if not self.torn:
                conn.sendall(BODY)

    @staticmethod
    def _read(conn: socket.socket) -> tuple[bytes | None, bytes]:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None, b""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.lower().split(b"\r\n")
        length = next((int(v.split(b":")[1]) for v in lines if v.startswith(b"content-length")), 0)
        while len(body) < length:
            body += conn.recv(65536)
        return head, body

    def close(self) -> None:
        self._socket.close()


@pytest.fixture(scope="module")
def serving(tmp_path_factory):
    """The edge and the router (real Caddy, Evergreen's configs) in front of a torn replica
    and a whole one, one request each in turn."""
    work: Path = tmp_path_factory.mktemp("torn")
    torn, whole = Replica(torn=True), Replica(torn=False)
    policy = RouterPolicy(max_fails=1000)  # keep the torn replica in the rotation
    router = start_caddy("router", f"{LOOPBACK}:{free_port()}", work)
    edge = start_caddy("edge", f"{LOOPBACK}:{free_port()}", work)
    try:
        upstreams = [Upstream(f"{LOOPBACK}:{r.port}", 1) for r in (torn, whole)]
        load(router, router_config(router.admin, router.listen, upstreams, policy))
        load(edge, edge_config(edge.admin, edge.listen, router.listen, policy))
        time.sleep(1.5)  # one active health check passed on both
        yield f"http://{edge.listen}/predict", torn, whole
    finally:
        stop_caddy(edge)
        stop_caddy(router)
        torn.close()
        whole.close()


def test_the_router_relays_a_torn_answer_so_a_plain_client_loses_it(serving):
    url, torn, _ = serving
    lost = 0
    with httpx.Client(timeout=10) as client:
        for _ in range(6):
            try:
                client.post(url, json={"n": 1})
            except httpx.HTTPError as error:
                assert is_torn(error), error
                lost += 1
    assert lost and torn.posts >= lost  # the edge's own retries do not save it


def test_a_torn_answer_is_sent_again_and_only_once(serving):
    url, torn, whole = serving
    resent = answered = 0
    with httpx.Client(timeout=10) as client:
        for _ in range(10):
            response, torn_retries = post_prediction(client, url, {"n": 1})
            assert response.status_code == 200 and response.content == BODY
            answered += 1
            resent += torn_retries
    assert answered == 10 and resent >= 1  # the round robin sent some to the torn replica
    assert resent <= 10


def test_a_refused_connection_is_not_resent(serving):
    refused = f"http://{LOOPBACK}:{free_port()}/predict"
    with httpx.Client(timeout=5) as client, pytest.raises(httpx.ConnectError):
        post_prediction(client, refused, {"n": 1})
