"""The prediction API against a real `bentoml serve` with two workers.

The champion's own predictions, loaded straight from MLflow, are the oracle; every bad
input gets a 4xx naming row and field and the server keeps serving; the custom metrics
count what was sent.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from serving_harness import Champion, Server

from mlstack.replay import feature_records, run_replay
from pipeline.labels import normalize_label
from pipeline.settings import PROJECT_ROOT
from serving.service import EXAMPLE_INPUT

pytestmark = pytest.mark.integration

ROW: dict[str, Any] = EXAMPLE_INPUT["instances"][0]


@pytest.fixture(scope="module")
def production() -> pd.DataFrame:
    frame = pd.read_parquet(PROJECT_ROOT / "data" / "raw" / "production_2016_2018.parquet")
    return frame[frame["year"] == 2016].head(300).reset_index(drop=True)


def metric_values(server: Server) -> dict[str, float]:
    """``name{labels}`` -> value for the mlstack_ series on /metrics."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    values = {}
    for line in text.splitlines():
        if line.startswith("mlstack_"):
            key, value = line.rsplit(" ", 1)
            values[key] = float(value)
    return values


def settled_metrics(server: Server) -> dict[str, float]:
    """The metrics once the capture queue is empty, so record counts match requests."""
    deadline = time.monotonic() + 60
    while True:  # waiting for the writer's flush, not asserting on time
        values = metric_values(server)
        if values.get("mlstack_capture_pending_rows", 0) == 0 or time.monotonic() > deadline:
            return values
        time.sleep(0.5)


def total(values: dict[str, float], pattern: str) -> float:
    return sum(v for k, v in values.items() if re.fullmatch(pattern, k))


def test_predictions_equal_the_champion_loaded_from_mlflow(
    server: Server, champion: Champion, production: pd.DataFrame
) -> None:
    from pipeline.tracking import load_model

    settings = server.settings
    rows = feature_records(production, settings)
    one_by_one = asyncio.run(run_replay(server.url, rows, concurrency=8))
    as_batch = httpx.post(f"{server.url}/predict", json={"instances": rows}, timeout=60).json()

    model = load_model(f"models:/{champion.name}@champion", champion.tracking_uri)
    frame = pd.DataFrame(rows).astype({c: "float64" for c in settings.data.features.numerical})
    expected_proba = model.predict_proba(frame)
    expected_labels = [normalize_label(v) for v in model.predict(frame)]
    classes = [normalize_label(c) for c in model.classes_]

    assert one_by_one.ok == len(rows)
    assert as_batch["model"] == {"name": champion.name, "version": champion.version}
    served = as_batch["predictions"]
    assert [p["label"] for p in served] == expected_labels
    got = np.array([[p["probabilities"][c] for c in classes] for p in served])
    np.testing.assert_allclose(got, expected_proba, rtol=0, atol=1e-12)
    assert len({p["request_id"] for p in served}) == len(rows)


def bad_requests() -> list[tuple[str, str, bytes, int, str, list[Any]]]:
    """(case, path, body, status, reason, loc) for every kind of bad input."""
    many = json.dumps({"instances": [ROW] * 1001}).encode()
    return [
        ("malformed json", "/predict", b'{"instances": [', 400, "malformed_json", []),
        (
            "missing feature",
            "/predict",
            _body([ROW, _without(ROW, "MAR")]),
            400,
            "missing_feature",
            ["instances", 1, "MAR"],
        ),
        (
            "extra feature",
            "/predict",
            _body([{**ROW, "colour": "red"}]),
            400,
            "extra_feature",
            ["instances", 0, "colour"],
        ),
        (
            "wrong type",
            "/predict",
            _body([ROW, ROW, {**ROW, "AGEP": "old"}]),
            400,
            "wrong_type",
            ["instances", 2, "AGEP"],
        ),
        (
            "out of range",
            "/predict",
            _body([{**ROW, "AGEP": -3}]),
            400,
            "out_of_range",
            ["instances", 0, "AGEP"],
        ),
        (
            "unknown category",
            "/predict",
            _body([ROW, {**ROW, "SCHL": "99"}]),
            400,
            "unknown_category",
            ["instances", 1, "SCHL"],
        ),
        ("too many rows", "/predict", many, 400, "too_many_rows", ["instances"]),
        ("no rows", "/predict", _body([]), 400, "no_rows", ["instances"]),
        (
            "body too large",
            "/predict",
            b'{"instances": [' + b" " * 1_100_000 + b"]}",
            413,
            "body_too_large",
            [],
        ),
        (
            "unknown class",
            "/feedback",
            json.dumps(
                {"labels": [{"request_id": "a", "label": 1}, {"request_id": "b", "label": 7}]}
            ).encode(),
            400,
            "unknown_class",
            ["labels", 1, "label"],
        ),
    ]


def _body(instances: list[dict[str, Any]]) -> bytes:
    return json.dumps({"instances": instances}).encode()


def _without(row: dict[str, Any], column: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != column}


@pytest.mark.parametrize(
    ("case", "path", "body", "status", "reason", "loc"),
    bad_requests(),
    ids=[case[0] for case in bad_requests()],
)
def test_bad_input_is_refused_naming_row_and_field_and_counted(
    server: Server, case: str, path: str, body: bytes, status: int, reason: str, loc: list[Any]
) -> None:
    before = metric_values(server)
    response = httpx.post(
        f"{server.url}{path}",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )

    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    if loc:
        assert list(detail[0]["loc"])[-len(loc) :] == loc
    after = metric_values(server)
    key = f'mlstack_invalid_requests_total{{reason="{reason}"}}'
    assert after.get(key, 0) - before.get(key, 0) == 1
    assert total(after, r"mlstack_predictions_total\{.*\}") == total(
        before, r"mlstack_predictions_total\{.*\}"
    )
    still = httpx.post(f"{server.url}/predict", json=EXAMPLE_INPUT, timeout=30)
    assert still.status_code == 200


def test_metrics_count_every_prediction_across_two_workers(
    server: Server, production: pd.DataFrame
) -> None:
    rows = feature_records(production.head(120), server.settings)
    before = settled_metrics(server)

    result = asyncio.run(run_replay(server.url, rows, concurrency=16, batch=1))
    batch = httpx.post(f"{server.url}/predict", json={"instances": rows[:30]}, timeout=30)
    feedback = httpx.post(
        f"{server.url}/feedback",
        json={"labels": [{"request_id": r, "label": "1"} for r in result.request_ids[:10]]},
        timeout=30,
    )

    after = metric_values(server)
    assert result.ok == 120 and batch.status_code == 200 and feedback.json()["accepted"] == 10
    predictions = r"mlstack_predictions_total\{.*\}"
    assert total(after, predictions) - total(before, predictions) == 150
    observed = r"mlstack_prediction_probability_count\{.*\}"
    assert total(after, observed) - total(before, observed) == 150
    info = [k for k in after if k.startswith("mlstack_model_info{")]
    assert len(info) == 1 and after[info[0]] == 1
    assert 'version="' in info[0] and 'run_id="' in info[0]
    assert "mlstack_capture_dropped_total" in after
    assert "mlstack_capture_pending_rows" in after
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert "bentoml_service_request_total" in text
    captured = 'mlstack_capture_records_total{kind="predictions"}'
    labels = 'mlstack_capture_records_total{kind="labels"}'
    later = settled_metrics(server)
    assert later.get(captured, 0) - before.get(captured, 0) == 150
    assert later.get(labels, 0) - before.get(labels, 0) == 10


def test_feedback_accepts_labels_spelled_any_way(server: Server) -> None:
    labels = [
        {"request_id": "x1", "label": 1},
        {"request_id": "x2", "label": "0"},
        {"request_id": "x3", "label": 1.0},
    ]
    response = httpx.post(f"{server.url}/feedback", json={"labels": labels}, timeout=30)
    assert response.status_code == 200
    assert response.json()["accepted"] == 3


def test_health_endpoints(server: Server) -> None:
    assert httpx.get(f"{server.url}/livez", timeout=10).status_code == 200
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
