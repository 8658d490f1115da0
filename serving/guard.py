"""An ASGI guard in front of ``/predict`` and ``/feedback``: body size and refusal counts.

The body limit has to act before BentoML reads and parses the body, which only a
middleware can do. Counting refusals here, from the 4xx responses themselves, puts
the count in one place whether pydantic (inside BentoML) or the service refused.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from serving.metrics import INVALID_REQUESTS, reason_of

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

GUARDED = ("/predict", "/feedback")


class RequestGuard:
    """Refuses bodies over ``max_body_bytes`` with 413 and counts every 4xx by reason."""

    def __init__(self, app: App, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") not in GUARDED:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status = 0
        error: list[bytes] = []

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and 400 <= status < 500:
                error.append(message.get("body", b""))
            await send(message)

        await self.app(scope, replay, watch)
        if 400 <= status < 500:
            INVALID_REQUESTS.labels(reason=_reason(b"".join(error))).inc()

    async def _too_large(self, send: Send) -> None:
        INVALID_REQUESTS.labels(reason="body_too_large").inc()
        body = json.dumps(
            {
                "error": f"request body over {self.max_body_bytes} bytes",
                "detail": [
                    {
                        "type": "body_too_large",
                        "loc": [],
                        "msg": f"send at most {self.max_body_bytes} bytes per request",
                    }
                ],
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _reason(body: bytes) -> str:
    try:
        first = json.loads(body)["detail"][0]
        return reason_of(str(first["type"]), list(first.get("loc") or []))
    except (ValueError, KeyError, IndexError, TypeError):
        return "invalid"
