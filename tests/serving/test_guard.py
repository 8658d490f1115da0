"""The request guard on its own, driven as the ASGI server drives it.

The question here is who the client is (``scope["client"]``), which a test server bound
to 127.0.0.1 cannot vary: every real client of it is on loopback. So the real guard is
called with ASGI scopes directly, in front of a minimal app that answers 200; the
loopback case is also covered end to end by every feedback test against a real server.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from serving.guard import RequestGuard, is_loopback

BODY = b'{"labels": [{"request_id": "a", "label": 1}]}'


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def call(guard: RequestGuard, client: str, path: str = "/feedback", **headers: str) -> dict:
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "client": (client, 50000),
        "headers": [(b"content-type", b"application/json")]
        + [(k.encode(), v.encode()) for k, v in headers.items()],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return {"status": start["status"], "body": json.loads(body)}


def test_without_a_token_feedback_from_another_host_is_403_naming_the_fix() -> None:
    guard = RequestGuard(_ok, max_body_bytes=10_000)
    refused = call(guard, "10.1.2.3")
    assert refused["status"] == 403
    (detail,) = refused["body"]["detail"]
    assert detail["type"] == "feedback_not_local"
    assert "MLSTACK_FEEDBACK_TOKEN" in detail["msg"] and "open_feedback" in detail["msg"]
    assert call(guard, "127.0.0.1")["status"] == 200
    assert call(guard, "::1")["status"] == 200
    assert call(guard, "10.1.2.3", path="/predict")["status"] == 200, "only /feedback"


def test_open_feedback_or_a_token_lets_other_hosts_label() -> None:
    opened = RequestGuard(_ok, max_body_bytes=10_000, open_feedback=True)
    assert call(opened, "10.1.2.3")["status"] == 200
    tokened = RequestGuard(_ok, max_body_bytes=10_000, feedback_token="t0k")
    assert call(tokened, "10.1.2.3", authorization="Bearer t0k")["status"] == 200
    assert call(tokened, "10.1.2.3")["status"] == 401


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.168.0.4", False),
        ("0.0.0.0", False),
        ("localhost", False),
        ("", False),
    ],
)
def test_loopback_is_an_address_not_a_name(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
