"""Refusals a hostile or careless client meets on a real server, and what the log says.

- a NaN label is a 400 naming its row (it was a 500);
- an unknown top-level key is a 400, as an unknown key inside a row is;
- one WARNING line per refused request, without the body, and no traceback;
- a refused value is echoed back cut short, never whole;
- with ``MLSTACK_FEEDBACK_TOKEN`` set, ``/feedback`` without the bearer token is a 401;
- a capture path that can never be written fails ``/readyz``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from serving_harness import Server, start_server

from serving.service import EXAMPLE_INPUT

pytestmark = pytest.mark.integration

ROW: dict[str, Any] = EXAMPLE_INPUT["instances"][0]
TOKEN = "s3cret-for-tests"


def post(server: Server, path: str, body: bytes, **headers: str) -> httpx.Response:
    headers = {"content-type": "application/json", **headers}
    return httpx.post(f"{server.url}{path}", content=body, headers=headers, timeout=30)


def test_a_nan_label_is_a_400_naming_its_row(server: Server) -> None:
    body = b'{"labels": [{"request_id": "a", "label": 1}, {"request_id": "b", "label": NaN}]}'
    response = post(server, "/feedback", body)
    assert response.status_code == 400, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["labels", 1, "label"]
    assert error["type"] == "label_type"


def test_a_boolean_label_is_refused_as_the_schema_says(server: Server) -> None:
    response = post(server, "/feedback", b'{"labels": [{"request_id": "a", "label": true}]}')
    assert response.status_code == 400
    assert response.json()["detail"][0]["loc"] == ["labels", 0, "label"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/predict", {"instances": [ROW], "model": "v2"}),
        ("/predict", {"instance": [ROW]}),
        ("/feedback", {"labels": [{"request_id": "a", "label": 1}], "force": True}),
    ],
)
def test_an_unknown_top_level_key_is_a_400_like_an_unknown_row_key(
    server: Server, path: str, body: dict[str, Any]
) -> None:
    """The probe's case: ``{"instances": [...], "model": "v2"}`` was answered (the key did
    nothing, silently) while an unknown key inside a row was a 400."""
    response = post(server, path, json_body(body))
    assert response.status_code == 400, response.text
    locs = [error["loc"] for error in response.json()["detail"]]
    unknown = next(k for k in body if k not in ("instances", "labels"))
    assert [unknown] in locs
    inside = post(server, "/predict", json_body({"instances": [{**ROW, "colour": "red"}]}))
    assert inside.status_code == 400
    assert inside.json()["detail"][0]["loc"] == ["instances", 0, "colour"]


def test_a_refused_request_logs_one_warning_line_without_its_body(server: Server) -> None:
    secret = "unmistakable-body-value-7f3a"
    before = server.log.read_text(errors="replace")
    response = post(server, "/predict", f'{{"instances": [{{"AGEP": "{secret}"}}]}}'.encode())
    assert response.status_code == 400
    deadline = time.monotonic() + 30
    while True:  # the log line is written after the response: wait for it, boundedly
        added = server.log.read_text(errors="replace")[len(before) :]
        if "refused POST /predict" in added or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    lines = [line for line in added.splitlines() if "refused POST /predict" in line]
    assert len(lines) == 1 and "[WARNING]" in lines[0]
    assert secret not in added
    assert "Traceback" not in added


def test_a_refused_value_is_echoed_back_cut_short(server: Server) -> None:
    huge = "Z" * 200_000
    response = post(server, "/predict", json_body({"instances": [{**ROW, "SCHL": huge}]}))
    assert response.status_code == 400
    assert response.json()["detail"][0]["loc"] == ["instances", 0, "SCHL"]
    assert len(response.content) < 1_000


def test_without_a_token_the_server_warns_at_start_and_takes_local_labels(
    server: Server, guarded: Server
) -> None:
    """No token: one warning at start saying who may label; the tests' client is on loopback
    (a client on another host gets 403: tests/serving/test_guard.py)."""
    warned = [line for line in server.log.read_text().splitlines() if "no MLSTACK_FEEDBACK" in line]
    assert warned and "loopback clients only" in warned[0]
    assert "no MLSTACK_FEEDBACK" not in guarded.log.read_text()
    served = post(server, "/predict", json_body(EXAMPLE_INPUT)).json()
    label = {"request_id": served["predictions"][0]["request_id"], "label": 1}
    assert post(server, "/feedback", json_body({"labels": [label]})).status_code == 200


@pytest.fixture(scope="module")
def guarded(
    packaged: str, base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server with a feedback token whose capture path is a file: it can never write.

    Started until it is live (``/livez``): it never gets ready, which is the point.
    """
    folder = tmp_path_factory.mktemp("guarded")
    blocker = folder / "not-a-folder"
    blocker.write_text("a file where the capture folder should be")
    env = {**base_env, "MLSTACK_FEEDBACK_TOKEN": TOKEN}
    server = start_server(folder, env, wait_for="/livez", capture={"path": str(blocker)})
    yield server
    server.stop()


def test_a_capture_path_that_cannot_be_written_fails_readiness(guarded: Server) -> None:
    assert httpx.get(f"{guarded.url}/livez", timeout=10).status_code == 200
    assert httpx.get(f"{guarded.url}/readyz", timeout=10).status_code == 503


def test_feedback_without_the_token_is_401_and_with_it_200(guarded: Server) -> None:
    served = post(guarded, "/predict", json_body(EXAMPLE_INPUT))
    assert served.status_code == 200
    request_id = served.json()["predictions"][0]["request_id"]
    body = json_body({"labels": [{"request_id": request_id, "label": 1}]})
    assert post(guarded, "/feedback", body).status_code == 401
    wrong = post(guarded, "/feedback", body, authorization="Bearer nope")
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert wrong.json()["detail"][0]["loc"] == ["header", "authorization"]
    right = post(guarded, "/feedback", body, authorization=f"Bearer {TOKEN}")
    assert right.status_code == 200
    assert (right.json()["accepted"], right.json()["unmatched"]) == (1, 0)


def test_a_label_for_an_id_the_service_never_issued_is_counted_not_captured(
    guarded: Server,
) -> None:
    served = post(guarded, "/predict", json_body(EXAMPLE_INPUT)).json()
    real = served["predictions"][0]["request_id"]
    forged = real[:32] + "0" * 16  # the shape of an id, not its signature
    labels = [{"request_id": real, "label": 0}, {"request_id": forged, "label": 1}]
    labels.append({"request_id": "never-answered", "label": 1})
    before = unmatched_total(guarded)
    response = post(
        guarded, "/feedback", json_body({"labels": labels}), authorization=f"Bearer {TOKEN}"
    )
    assert response.status_code == 200
    assert (response.json()["accepted"], response.json()["unmatched"]) == (1, 2)
    assert unmatched_total(guarded) - before == 2


def test_a_non_ascii_request_id_or_token_is_refused_not_a_500(guarded: Server) -> None:
    """The probe's case: a request id that is not ASCII with the token set was a 500 with a
    traceback per request (hmac.compare_digest); a non-ASCII bearer token is a plain 401."""
    body = json_body({"labels": [{"request_id": "a" * 32 + "é" * 16, "label": 1}]})
    refused = post(guarded, "/feedback", body, authorization=f"Bearer {TOKEN}")
    assert refused.status_code == 400, refused.text
    assert refused.json()["detail"][0]["loc"] == ["labels", 0, "request_id"]
    token = httpx.post(
        f"{guarded.url}/feedback",
        content=body,
        headers={"content-type": "application/json", "authorization": "Bearer é".encode()},
        timeout=30,
    )
    assert token.status_code == 401
    assert httpx.get(f"{guarded.url}/livez", timeout=10).status_code == 200


def unmatched_total(server: Server) -> float:
    for line in httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines():
        if line.startswith("mlstack_feedback_unmatched_total "):
            return float(line.split()[1])
    return 0.0


def json_body(payload: Any) -> bytes:
    return json.dumps(payload).encode()
