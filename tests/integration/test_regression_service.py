"""A real ``bentoml serve`` of a car-price regressor packed with its interval labels: the
answers, the document, the refusals (the process stays up, nothing captured for them), the
predicted-value histogram, and the captured rows after a graceful stop."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pandas as pd
import pytest
from serving_harness import Server, refused_start, run_in_project, schemathesis_run, start_server

from monitoring.capture import read_kind
from pipeline.environment import TELEMETRY_OFF
from pipeline.interval import Interval
from pipeline.schema import INTERVAL_LOWER, INTERVAL_UPPER, PREDICTION
from pipeline.settings import PROJECT_ROOT, load_settings
from testbeds.regressor import CAR_PRICES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def packed(folder: Path, *flags: str) -> tuple[dict[str, str], Path]:
    """A BentoML store under ``folder`` holding a car-price regressor (testbeds/regressor.py),
    the environment that serves it, and its params.yaml."""
    env = {**os.environ, **TELEMETRY_OFF, "BENTOML_HOME": str(folder / "bentoml")}
    env.pop("MLSTACK_PARAMS", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    printed = run_in_project(
        PROJECT_ROOT, env, "-m", "testbeds.regressor", str(folder / "project"), *flags
    )
    return env, Path(printed)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Interval]]:
    folder = tmp_path_factory.mktemp("regression-server")
    env, params = packed(folder)
    from mlflow import MlflowClient

    settings = load_settings(params)
    uri = f"sqlite:///{settings.path('mlflow.db')}"
    registry = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = registry.get_model_version_by_alias(settings.model.name, "champion")
    interval = Interval.from_tags(version.tags)
    assert interval is not None
    server = start_server(folder / "server", env, base=params)
    try:
        yield server, interval
    finally:
        server.stop()


def instances(count: int) -> list[dict[str, Any]]:
    settings = load_settings(PROJECT_ROOT / "examples" / "regression" / "params.yaml")
    frame = pd.read_parquet(CAR_PRICES).tail(count)[settings.data.features.all]
    return list(frame.astype(object).to_dict("records"))


def test_predictions_carry_their_interval_and_the_document_says_so(
    served: tuple[Server, Interval],
) -> None:
    server, interval = served
    answer = httpx.post(f"{server.url}/predict", json={"instances": instances(3)}, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"model", "predictions"}
    assert body["model"]["name"] == "car-price-regressor"
    for row in body["predictions"]:
        assert set(row) == {"request_id", "prediction", "interval"}
        assert isinstance(row["prediction"], float)
        lower, upper = row["interval"]["lower"], row["interval"]["upper"]
        assert lower == pytest.approx(row["prediction"] - interval.half_width)
        assert upper == pytest.approx(row["prediction"] + interval.half_width)
    document = httpx.get(f"{server.url}/docs.json", timeout=30).json()
    schema = document["paths"]["/predict"]["post"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    jsonschema.validate(body, schema)
    assert schema["title"] == "RegressionAnswer"
    label = document["components"]["schemas"]["NumberLabelIn"]["properties"]["label"]
    assert label["type"] == "number"
    metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert "mlstack_predicted_value_bucket{" in metrics
    assert 'mlstack_predicted_value_count{model_version="1"} 3.0' in metrics


@pytest.mark.parametrize("label", ["1.5", "NaN", "Infinity", "true", '"4200"', "1e999"])
def test_feedback_that_is_no_finite_number_is_a_400_naming_the_row(
    served: tuple[Server, Interval], label: str
) -> None:
    server, _ = served
    text = (
        '{"labels": [{"request_id": "refusal-x", "label": 1}, '
        '{"request_id": "refusal-y", "label": %s}]}'
    )
    if label == "1.5":  # the good one: accepted
        answer = httpx.post(
            f"{server.url}/feedback",
            content=text % label,
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert answer.status_code == 200 and answer.json()["accepted"] == 2, answer.text
        return
    answer = httpx.post(
        f"{server.url}/feedback",
        content=text % label,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 400, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"][:3] == ["labels", 1, "label"]
    assert httpx.get(f"{server.url}/livez", timeout=10).status_code == 200


def test_schemathesis_finds_the_regression_document_true(
    served: tuple[Server, Interval], tmp_path: Path
) -> None:
    """tests/integration/test_openapi_contract.py's run, against the regressor's document."""
    server, _ = served
    done = schemathesis_run(server, tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_captured_rows_hold_numbers_and_refused_labels_are_not_there(
    served: tuple[Server, Interval],
) -> None:
    server, _ = served
    ids = [
        row["request_id"]
        for row in httpx.post(
            f"{server.url}/predict", json={"instances": instances(2)}, timeout=30
        ).json()["predictions"]
    ]
    answer = httpx.post(
        f"{server.url}/feedback",
        json={"labels": [{"request_id": ids[0], "label": 4277.25}]},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert server.stop() == 0
    predictions = read_kind(server.capture, "predictions")
    for column in (PREDICTION, INTERVAL_LOWER, INTERVAL_UPPER):
        assert predictions[column].dtype == "float64"
    assert set(ids) <= set(predictions["request_id"])
    labels = read_kind(server.capture, "labels")
    # the accepted feedback requests' labels; none of the refused ones (same ids)
    mine = labels[labels["request_id"].isin(["refusal-x", "refusal-y", ids[0]])]
    assert sorted(mine["label"]) == sorted(["1", "1.5", "4277.25"])
    assert labels.loc[labels["request_id"] == ids[0], "label"].tolist() == ["4277.25"]


def test_a_packed_regressor_without_its_interval_does_not_serve(tmp_path: Path) -> None:
    env, params = packed(tmp_path, "--untagged")
    log = refused_start(
        tmp_path / "server", env, "a regressor without its interval", seconds=180, base=params
    )
    assert "mlstack.interval.half_width" in log
