"""Serving a regressor: the compiled path against the pipeline, the interval required at
load and followed at a swap, feedback numbers (and what is refused), the document's answer,
and captured rows (float64 prediction and bounds, string labels) through a kill -9."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from monitoring.capture import CaptureWriter, read_kind
from monitoring.capture.schema import as_numbers
from pipeline.interval import HALF_WIDTH_TAG, Interval
from pipeline.labels import normalize_label
from pipeline.schema import INTERVAL_LOWER, INTERVAL_UPPER, PREDICTION
from pipeline.settings import PROJECT_ROOT, Settings, load_settings
from pipeline.tracking import Champion
from serving.champion import ChampionFollower, IncompatibleModel, serve_model
from serving.inputs import body_model, label_model
from serving.openapi import AcceptedInputs
from serving.scoring import prepare_scorer
from testbeds.regressor import car_price_params, fit_regressor, register, regression_batch
from tests.process_metrics import sample

pytestmark = pytest.mark.slow  # models fitted on car prices, a real MLflow store


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(car_price_params(tmp_path_factory.mktemp("car-prices")))


@pytest.fixture(scope="module")
def fitted(settings: Settings) -> tuple[Any, Interval, pd.DataFrame]:
    return fit_regressor(settings)


def rows_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {c: (None if v != v else v) for c, v in row.items()}
        for row in frame.astype(object).to_dict("records")
    ]


@pytest.mark.parametrize("estimator", ["hist_gradient_boosting", "random_forest", "ridge"])
def test_each_regressor_is_compiled_and_predicts_what_its_pipeline_does(
    settings: Settings, estimator: str
) -> None:
    model, _, unseen = fit_regressor(settings, estimator, rows=1500)
    scorer = prepare_scorer(model, settings)
    assert scorer.compiled is not None, scorer.reason
    assert (scorer.compiled.trees is not None) == (estimator == "hist_gradient_boosting")
    sample = unseen.head(300)
    got, want = scorer.predict(rows_of(sample)), model.predict(sample)
    np.testing.assert_allclose(got, want, rtol=1e-9)
    one = scorer.predict(rows_of(sample.head(1)))
    assert one.shape == (1,) and one[0] == pytest.approx(want[0], rel=1e-9)


def test_without_compiled_inputs_the_pipeline_serves_and_says_why(
    settings: Settings, fitted: tuple[Any, Interval, pd.DataFrame]
) -> None:
    model, _, unseen = fitted
    plain = settings.model_copy(
        update={"serving": settings.serving.model_copy(update={"compiled_inputs": False})}
    )
    scorer = prepare_scorer(model, plain)
    assert scorer.compiled is None and "compiled_inputs is false" in scorer.reason
    np.testing.assert_array_equal(
        scorer.predict(rows_of(unseen.head(5))), model.predict(unseen.head(5))
    )


def test_a_regressor_is_served_with_its_interval_and_refused_without_it(
    settings: Settings, fitted: tuple[Any, Interval, pd.DataFrame]
) -> None:
    model, interval, _ = fitted
    served = serve_model(model, Champion("m", "1", "", interval.tags()), settings)
    assert served.interval == interval and served.classes == []
    with pytest.raises(IncompatibleModel, match=HALF_WIDTH_TAG):
        serve_model(model, Champion("m", "2", "", {}), settings)
    with pytest.raises(ValueError, match="not numbers"):
        serve_model(model, Champion("m", "3", "", {HALF_WIDTH_TAG: "wide"}), settings)
    data = settings.data.model_copy(update={"task": "classification", "classes": ["0", "1"]})
    classification = settings.model_copy(update={"data": data})
    with pytest.raises(IncompatibleModel, match="regressor for a classification task"):
        serve_model(model, Champion("m", "4", "", interval.tags()), classification)


def test_the_follower_refuses_a_version_without_its_interval_and_swaps_in_one_with_it(
    settings: Settings, fitted: tuple[Any, Interval, pd.DataFrame]
) -> None:
    model, interval, _ = fitted
    first = register(settings, model, interval)
    follower = ChampionFollower(
        settings,
        serve_model(
            model, Champion(first.name, first.version, first.run_id, interval.tags()), settings
        ),
        prepare=prepare_scorer,
    )
    failures = sample("mlstack_model_reload_failures_total", reason="incompatible")
    untagged = register(settings, model, None)
    assert follower.poll()
    assert follower.served.version == first.version  # the old one keeps serving
    assert sample("mlstack_model_reload_failures_total", reason="incompatible") == failures + 1
    wider = Interval(interval.half_width * 2, 0.95)
    tagged = register(settings, model, wider)
    assert int(tagged.version) > int(untagged.version)
    assert follower.poll()
    assert follower.served.version == tagged.version
    assert follower.served.interval == wider
    assert follower.served.prepared.compiled is not None


@pytest.fixture(scope="module")
def feedback_body(settings: Settings) -> Any:
    """The /feedback body model the service builds for a regression task."""
    return body_model("FeedbackRequest", "labels", label_model(settings.data), 10)


@pytest.mark.parametrize(
    "value", ['"1.5"', '"abc"', "NaN", "Infinity", "-Infinity", "1e400", "true", "null", "[1]"]
)
def test_a_regression_label_is_a_finite_json_number(feedback_body: Any, value: str) -> None:
    text = '{"labels": [{"request_id": "a", "label": 1}, {"request_id": "b", "label": %s}]}'
    with pytest.raises(ValidationError) as caught:
        feedback_body.model_validate_json(text % value)
    (error,) = caught.value.errors(include_url=False)
    assert error["loc"][:3] == ("labels", 1, "label")


@pytest.mark.parametrize(
    "value", [3, 3.0, 1.5, 0.1 + 0.2, -2.5e-7, 1e20, 123456.789, 1.7976931348623157e308]
)
def test_a_regression_label_is_stored_in_one_spelling_that_reads_back_exactly(
    feedback_body: Any, value: float
) -> None:
    body = feedback_body.model_validate_json(
        json.dumps({"labels": [{"request_id": "a", "label": value}]})
    )
    label = body.labels[0].label
    assert isinstance(label, float)
    stored = normalize_label(label)
    assert isinstance(stored, str)
    # read back as the drift job reads a regression window's labels (pd.to_numeric would
    # not do: its parser gives 0.3 for "0.30000000000000004")
    assert as_numbers(pd.Series([stored], dtype="str")).iloc[0] == float(value)
    assert as_numbers(pd.Series([stored, "oops", None], dtype=object)).isna().tolist() == [
        False,
        True,
        True,
    ]


def test_the_document_declares_the_answer_of_the_task() -> None:
    def document(regression: bool) -> dict[str, Any]:
        spec: dict[str, Any] = {"paths": {"/predict": {"post": {"responses": {"200": {}}}}}}
        AcceptedInputs(False, regression=regression).describe(spec)
        content = spec["paths"]["/predict"]["post"]["responses"]["200"]["content"]
        schema: dict[str, Any] = content["application/json"]["schema"]
        return schema

    regression = document(True)
    row = regression["properties"]["predictions"]["items"]
    assert row["required"] == ["request_id", "prediction", "interval"]
    assert row["properties"]["interval"]["required"] == ["lower", "upper"]
    classification = document(False)["properties"]["predictions"]["items"]
    assert classification["required"] == ["request_id", "label", "probabilities"]


def test_captured_regression_rows_hold_float64_prediction_and_bounds_and_string_labels(
    settings: Settings, tmp_path: Path
) -> None:
    # Declared numerical: the features only. The segment line itself says it is a
    # regressor's (its output columns are the bounds), so any reader types it the same.
    writer = CaptureWriter(
        tmp_path / "log",
        segments=tmp_path / "segments",
        numerical=settings.data.features.numerical,
    ).start()
    writer.add("predictions", regression_batch(settings, [4277.5, 0.1 + 0.2, 12000.0]))
    when = datetime(2026, 3, 1, 12, 5, tzinfo=UTC)
    writer.add("labels", [{"request_id": "r0", "timestamp": when, "label": 4300.25}])
    writer.close()
    predictions = read_kind(tmp_path / "log", "predictions")
    for column in (PREDICTION, INTERVAL_LOWER, INTERVAL_UPPER):
        assert predictions[column].dtype == "float64", column
    assert predictions[PREDICTION].tolist() == [4277.5, 0.1 + 0.2, 12000.0]
    assert predictions[INTERVAL_UPPER].tolist() == [4527.5, 0.1 + 0.2 + 250.0, 12250.0]
    labels = read_kind(tmp_path / "log", "labels")
    assert labels["label"].tolist() == ["4300.25"]


KILLED = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from monitoring.capture import CaptureWriter
    from pipeline.settings import load_settings
    from testbeds.regressor import regression_batch
    settings = load_settings(sys.argv[2])
    folder = Path(sys.argv[1])
    writer = CaptureWriter(folder / "log", segments=folder / "segments",
                           numerical=settings.data.features.numerical, flush_seconds=3600)
    writer.start()
    writer.add("predictions", regression_batch(settings, [1000.0, 2000.5]))
    print("added", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_regression_rows_answered_before_a_kill_9_are_recovered(
    settings: Settings, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", KILLED, str(tmp_path), str(settings.root / "params.yaml")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -9 and "added" in done.stdout, done.stderr[-2000:]
    assert not (tmp_path / "log").exists() or read_kind(tmp_path / "log", "predictions").empty
    writer = CaptureWriter(
        tmp_path / "log", segments=tmp_path / "segments", numerical=()
    )  # recovered by a writer that declares nothing numerical: the line says what it is
    assert writer.recover() == 2
    recovered = read_kind(tmp_path / "log", "predictions")
    assert recovered[PREDICTION].tolist() == [1000.0, 2000.5]
    assert recovered[INTERVAL_LOWER].dtype == "float64"
