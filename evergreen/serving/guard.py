"""The service's front door (an ASGI middleware): JSON bodies only, and an OpenAPI document that
says what the service really answers.

- ``POST /predict`` takes ``application/json`` and nothing else: BentoML would otherwise read a
  ``text/plain`` body as JSON and hand a ``multipart/form-data`` body without a boundary to its
  multipart parser, which failed with a ``KeyError`` (a 500). Anything else gets a 415 saying
  which type to send.
- ``GET /docs.json`` (BentoML's generated OpenAPI document) is amended where BentoML's generic
  error schemas differ from this service's answers: a 400's ``detail`` is the list of
  validation errors (``loc``, ``msg``, ``type``) the README documents, not a string; 415 and
  503 (not ready) are answers too. A client generated from the document, or a fuzzer driven by
  it, then sees the truth.

Pure ASGI, no BentoML import: the service adds it with ``add_asgi_middleware``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_BODY_ROUTES = ("/predict",)
OPENAPI_PATH = "/docs.json"
ACCEPTED_MEDIA_TYPE = "application/json"

_ERROR_ITEM = {
    "title": "ValidationErrorItem",
    "type": "object",
    "properties": {
        "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        "msg": {"type": "string"},
        "type": {"type": "string"},
    },
    "required": ["loc", "msg", "type"],
}
_SCHEMAS = {
    "InvalidArgument": {
        "title": "InvalidArgument",
        "type": "object",
        "description": "Bad Request: the body is not a valid request; `detail[].loc` names "
        'each bad field (`["transactions", 0, "amount"]`).',
        "properties": {
            "error": {"type": "string", "title": "Message"},
            "detail": {"type": "array", "items": {"$ref": "#/components/schemas/ErrorItem"}},
        },
        "required": ["error", "detail"],
    },
    "ErrorItem": _ERROR_ITEM,
    "UnsupportedMediaType": {
        "title": "UnsupportedMediaType",
        "type": "object",
        "description": "Unsupported Media Type: send the body as application/json.",
        "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
        "required": ["error", "detail"],
    },
    "NotReady": {
        "title": "NotReady",
        "type": "object",
        "description": "Service Unavailable: the replica cannot score yet, and says why.",
        "properties": {"error": {"type": "string"}},
        "required": ["error"],
    },
}


def _response(description: str, schema: str) -> dict:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def amend_openapi(document: dict) -> dict:
    """BentoML's OpenAPI document with this service's real error answers (see the module)."""
    document.setdefault("components", {}).setdefault("schemas", {}).update(_SCHEMAS)
    for route in JSON_BODY_ROUTES:
        operation = document.get("paths", {}).get(route, {}).get("post")
        if not operation:
            continue
        responses = operation.setdefault("responses", {})
        responses["400"] = _response("Bad Request", "InvalidArgument")
        responses["415"] = _response("Unsupported Media Type", "UnsupportedMediaType")
        responses["503"] = _response("Service Unavailable", "NotReady")
        body = operation.get("requestBody", {}).get("content", {})
        if ACCEPTED_MEDIA_TYPE in body:  # BentoML lists no other, but say it plainly
            operation["requestBody"]["content"] = {ACCEPTED_MEDIA_TYPE: body[ACCEPTED_MEDIA_TYPE]}
    return document


def _media_type(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower()
    return ""


async def _send_json(send: Send, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class RequestGuard:
    """Refuses non-JSON bodies on the JSON routes; amends the OpenAPI document on its way out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method", "")
        if path in JSON_BODY_ROUTES and method == "POST":
            media = _media_type(scope)
            if media != ACCEPTED_MEDIA_TYPE:
                await _send_json(
                    send,
                    415,
                    {
                        "error": "unsupported media type",
                        "detail": f"send the body as {ACCEPTED_MEDIA_TYPE}, not {media or 'none'}",
                    },
                )
                return
        if path == OPENAPI_PATH and method == "GET":
            await self._amended_openapi(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _amended_openapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    await self._send_amended(send, start, b"".join(chunks))

        await self.app(scope, receive, capture)

    @staticmethod
    async def _send_amended(send: Send, start: Message, body: bytes) -> None:
        if start.get("status") == 200:
            body = json.dumps(amend_openapi(json.loads(body))).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", b"%d" % len(body)))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})
