"""How a client sends one prediction request: a response cut off after its headers is sent
once more.

A replica killed between writing a response's headers and its body (``kill -9``, the OOM
killer) leaves a torn answer: the router has already relayed the headers, and no proxy can
retry once it has (Caddy, like nginx, HAProxy and Envoy, retries only before the upstream's
headers arrive). The client that sent it knows the request never got its answer, and a
prediction is idempotent per transaction id (the request-time state counts a transaction
once, however often it is sent), so it sends the same body again, as a bank's authorisation
client would with an idempotency key. Only that case is retried: a refused connection or a
timeout is the edge's to absorb (it retries on a fresh connection for its whole window), and a
5xx or a 4xx is an answer.
"""

from __future__ import annotations

import httpx

# httpx's words for an answer whose body stopped short of its Content-Length (h11) or its
# chunked framing.
_TORN = ("without sending complete message body", "incomplete chunked read")


def is_torn(error: httpx.HTTPError) -> bool:
    """Whether ``error`` is a response cut off after its headers."""
    message = str(error)
    return isinstance(error, httpx.RemoteProtocolError) and any(t in message for t in _TORN)


def post_prediction(
    client: httpx.Client, url: str, body: dict, retries: int = 1
) -> tuple[httpx.Response, int]:
    """``POST`` ``body`` to ``url``; returns the response and how many torn answers were sent
    again first (at most ``retries``). Any other transport error is raised as it is."""
    for attempt in range(retries + 1):
        try:
            return client.post(url, json=body), attempt
        except httpx.RemoteProtocolError as error:
            if attempt == retries or not is_torn(error):
                raise
    raise AssertionError("unreachable: the loop returns or raises")
