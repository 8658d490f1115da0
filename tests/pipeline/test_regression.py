"""A numeric target through the pipeline's pure cores: the schema's checks, the regressor
the factory picks, the regression metrics, the split-conformal interval and the reference
set the evaluate stage writes, on the shipped car-price table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.evaluate import evaluate, headline
from pipeline.interval import Interval, IntervalError, calibrate
from pipeline.metrics import model_score, regression_metrics
from pipeline.model import build_model
from pipeline.prepare import prepare
from pipeline.schema import INTERVAL_LOWER, INTERVAL_UPPER, PREDICTION, SchemaError
from pipeline.settings import PROJECT_ROOT, Settings, parse_settings

EXAMPLE = PROJECT_ROOT / "examples" / "regression" / "params.yaml"


@pytest.fixture(scope="module")
def settings() -> Settings:
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["train"]["hist_gradient_boosting"]["max_iter"] = 60
    raw["evaluate"]["importance_repeats"] = 1
    return parse_settings(raw, root=PROJECT_ROOT)


@pytest.fixture(scope="module")
def cars() -> pd.DataFrame:
    raw = pd.read_parquet(PROJECT_ROOT / "data/raw/car_price/reference.parquet")
    return raw.sample(6000, random_state=0).reset_index(drop=True)


def test_the_factory_picks_the_regressor_of_each_name(settings: Settings) -> None:
    for name, kind in (
        ("hist_gradient_boosting", "HistGradientBoostingRegressor"),
        ("random_forest", "RandomForestRegressor"),
        ("ridge", "Ridge"),
    ):
        chosen = settings.train.model_copy(update={"estimator": name})
        model = build_model(settings.data.features, chosen, 0, "regression")
        assert type(model.steps[-1][1]).__name__ == kind


def test_evaluate_scores_calibrates_and_writes_the_reference(
    settings: Settings, cars: pd.DataFrame
) -> None:
    train, test = prepare(cars, settings.data)
    assert train[settings.data.target].dtype == "float64"
    features = settings.data.features
    model = build_model(features, settings.train, 0, "regression")
    model.fit(train[features.all], train[settings.data.target])
    evaluation = evaluate(
        model, test, pd.DataFrame(), settings, model_name="cars", model_version="1"
    )
    metrics = evaluation.metrics
    assert {"rmse", "mae", "r2", "mape", "interval_coverage"} <= set(metrics)
    assert metrics["rmse"] >= metrics["mae"] > 0 and 0.8 < metrics["r2"] < 1
    # nominal 0.9, measured on the ~750 test rows the calibration did not see
    assert 0.85 <= metrics["interval_coverage"] <= 0.95
    assert evaluation.interval is not None and evaluation.interval.coverage == 0.9
    assert metrics["interval_half_width"] == evaluation.interval.half_width > 0
    reference = evaluation.reference
    assert {PREDICTION, INTERVAL_LOWER, INTERVAL_UPPER, "model_version"} <= set(reference)
    width = reference[INTERVAL_UPPER] - reference[INTERVAL_LOWER]
    assert np.allclose(width, 2 * evaluation.interval.half_width)
    assert set(evaluation.curves) == {"predicted_actual", "residuals"}
    # importance on RMSE: positive means the model leans on the feature
    assert max(evaluation.importance, key=evaluation.importance.__getitem__) in features.all
    assert model_score(model, test[features.all], test["price"], "rmse") == metrics["rmse"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["cheap", "dear"], "must be numeric for a regression task"),
        ([True, False], "must be numeric for a regression task"),
        ([1.0, np.nan], "has 1 null"),
        ([1.0, np.inf], "infinite value"),
        ([5.0, 5.0], "single value"),
    ],
)
def test_a_target_that_is_no_finite_number_is_refused_naming_it(
    settings: Settings, cars: pd.DataFrame, values: list[object], message: str
) -> None:
    rows = cars.head(2).copy()
    rows["price"] = pd.Series(values, index=rows.index)
    with pytest.raises(SchemaError, match=message) as raised:
        prepare(rows, settings.data)
    assert "'price'" in str(raised.value)


def test_mape_is_left_out_where_a_true_value_is_zero() -> None:
    assert "mape" not in regression_metrics([0.0, 2.0], [1.0, 2.0])
    assert regression_metrics([1.0, 2.0], [1.0, 3.0])["mape"] == pytest.approx(0.25)


def test_the_interval_is_the_conformal_quantile_and_refuses_too_few_rows() -> None:
    interval = calibrate(np.arange(1.0, 20.0), 0.9)  # 19 rows: rank ceil(20 * 0.9) = 18
    assert interval.half_width == 18.0
    assert Interval.from_tags(interval.tags()) == interval
    with pytest.raises(IntervalError, match="cannot give a 90% interval"):
        calibrate(np.arange(5.0), 0.9)
    with pytest.raises(IntervalError, match="not numbers"):
        Interval.from_tags({"mlstack.interval.half_width": "wide"})


def test_the_example_params_name_a_regression_task(settings: Settings, tmp_path: Path) -> None:
    assert settings.data.is_regression and settings.data.classes is None
    assert settings.promote.metric == "rmse"
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["data"]["classes"] = [0, 1]
    from pipeline.settings import SettingsError

    with pytest.raises(SettingsError, match="data.classes"):
        parse_settings(raw, root=tmp_path)


def test_a_zero_price_leaves_mape_out_and_the_stage_says_why(
    settings: Settings, cars: pd.DataFrame
) -> None:
    train, test = prepare(cars, settings.data)
    features = settings.data.features
    model = build_model(features, settings.train, 0, "regression")
    model.fit(train[features.all], train[settings.data.target])
    test.loc[3, "price"] = 0.0
    evaluation = evaluate(model, test, pd.DataFrame(), settings, model_name="c", model_version="1")
    assert "mape" not in evaluation.metrics and "rmse" in evaluation.metrics
    lines = headline(evaluation, test, settings)
    assert lines[0].startswith("evaluate: rmse=") and "interval_coverage=" in lines[0]
    assert lines[1] == "evaluate: no mape: 1 test target(s) are 0 (an infinite % error)"


def test_a_one_row_test_split_is_an_interval_error(settings: Settings, cars: pd.DataFrame) -> None:
    train, test = prepare(cars, settings.data)
    features = settings.data.features
    model = build_model(features, settings.train, 0, "regression")
    model.fit(train[features.all], train[settings.data.target])
    with pytest.raises(IntervalError, match="cannot give|left to check"):
        evaluate(model, test.head(1), pd.DataFrame(), settings, model_name="c", model_version="1")
