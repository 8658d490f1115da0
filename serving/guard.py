"""An ASGI guard in front of ``/predict`` and ``/feedback``: token, body size, refusals.

The body limit and the feedback token have to act before BentoML reads and parses the
body, which only a middleware can do. Counting refusals here, from the 4xx responses
themselves, puts the count in one place whether pydantic (inside BentoML) or the service
refused, and so does the log: one WARNING line per refused request, naming the reason
and the first field, never the body.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from serving.openapi import with_error_responses
from serving.service_metrics import INVALID_REQUESTS, reason_of

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

GUARDED = ("/predict", "/feedback")


class RequestGuard:
    """Refuses ``/feedback`` without the bearer token (401, when a token is set), or, with
    no token set, from a client that is not on loopback (403, unless ``open_feedback``);
    and bodies over ``max_body_bytes`` (413); counts and logs every 4xx by reason.

    Without a token anyone who reaches ``/feedback`` can label any request id, so an
    unauthenticated server takes labels only from its own machine (a sidecar, a job on the
    host, the tests) unless the operator opens it on purpose.
    """

    def __init__(
        self,
        app: App,
        max_body_bytes: int,
        feedback_token: str | None = None,
        describe: Callable[[dict[str, Any]], None] | None = None,
        open_feedback: bool = False,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.open_feedback = open_feedback
        self._describe = describe  # adds what the model accepts to the OpenAPI document
        self._expected = f"Bearer {feedback_token}".encode() if feedback_token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] == "http" and path == OPENAPI:
            await self._documented(scope, receive, send)
            return
        if scope["type"] != "http" or path not in GUARDED:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if path == FEEDBACK and not self._authorized(headers.get(b"authorization")):
            await self._refuse(send, path, 401, UNAUTHORIZED)
            return
        if path == FEEDBACK and not self._may_label_without_token(scope):
            await self._refuse(send, path, 403, NOT_LOCAL)
            return
        media = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if media != b"application/json":
            await self._refuse(send, path, 415, NOT_JSON)
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send, path)
            return
        body = await self._read_body(receive, send, path)
        if body is not None:
            await self._pass_on(scope, body, receive, send, path)

    async def _read_body(self, receive: Receive, send: Send, path: str) -> bytes | None:
        """The whole body, or ``None`` when the client left or it outgrew the limit (413)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(send, path)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _pass_on(
        self, scope: Scope, body: bytes, receive: Receive, send: Send, path: str
    ) -> None:
        """Hand the read body to the service, then count and log its answer if a 4xx."""
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
            reason, where, count = _described(b"".join(error))
            INVALID_REQUESTS.labels(reason=reason).inc()
            _log_refusal(path, status, reason, where, count)

    async def _documented(self, scope: Scope, receive: Receive, send: Send) -> None:
        """BentoML's OpenAPI document with the error responses this service really gives."""
        start: Message = {}
        chunks: list[bytes] = []

        async def keep(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, keep)
        body = b"".join(chunks)
        if start.get("status") == 200:
            spec = with_error_responses(json.loads(body))
            if self._describe is not None:
                self._describe(spec)
            body = json.dumps(spec).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _authorized(self, header: bytes | None) -> bool:
        if self._expected is None:
            return True
        return header is not None and hmac.compare_digest(header, self._expected)

    def _may_label_without_token(self, scope: Scope) -> bool:
        if self._expected is not None or self.open_feedback:
            return True
        client = scope.get("client")
        return client is not None and is_loopback(str(client[0]))

    async def _too_large(self, send: Send, path: str) -> None:
        detail = {
            "type": "body_too_large",
            "loc": [],
            "msg": f"send at most {self.max_body_bytes} bytes per request",
        }
        summary = f"request body over {self.max_body_bytes} bytes"
        await self._refuse(send, path, 413, (summary, detail))

    async def _refuse(
        self, send: Send, path: str, status: int, error: tuple[str, dict[str, Any]]
    ) -> None:
        summary, detail = error
        reason = reason_of(str(detail["type"]))
        INVALID_REQUESTS.labels(reason=reason).inc()
        _log_refusal(path, status, reason, "", 1)
        body = json.dumps({"error": summary, "detail": [detail]}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


FEEDBACK = "/feedback"
OPENAPI = "/docs.json"
UNAUTHORIZED = (
    "missing or wrong feedback token",
    {
        "type": "unauthorized",
        "loc": ["header", "authorization"],
        "msg": "send Authorization: Bearer <MLSTACK_FEEDBACK_TOKEN>",
    },
)
NOT_JSON = (
    "the body must be JSON",
    {
        "type": "unsupported_media_type",
        "loc": ["header", "content-type"],
        "msg": "send Content-Type: application/json",
    },
)
NOT_LOCAL = (
    "feedback from another host needs a token",
    {
        "type": "feedback_not_local",
        "loc": ["client"],
        "msg": "the server has no MLSTACK_FEEDBACK_TOKEN: it takes labels from loopback "
        "clients only (set the token, or serving.open_feedback: true)",
    },
)
LOGGED_LOC_CHARS = 80  # a field name comes from the client: bounded in the log too


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an ASGI client address) is this machine's loopback interface."""
    import ipaddress

    try:
        return ipaddress.ip_address(host.removeprefix("::ffff:")).is_loopback
    except ValueError:
        return False


def _described(body: bytes) -> tuple[str, str, int]:
    """The reason label, the first error's location and the number of errors of a 4xx body."""
    try:
        detail = json.loads(body)["detail"]
        first = detail[0]
        loc = list(first.get("loc") or [])
        where = ".".join(str(part) for part in loc)[:LOGGED_LOC_CHARS]
        return reason_of(str(first["type"]), loc), where, len(detail)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return "invalid", "", 0


def _log_refusal(path: str, status: int, reason: str, where: str, count: int) -> None:
    """One line per refused request, without its body."""
    at = f" at {where}" if where else ""
    logger.warning("refused POST %s: %d %s%s (%d error(s))", path, status, reason, at, count)
