"""The drift job's verdicts for a regressor, on the shipped car-price table: a reference
set scored by a real regressor with its conformal interval, and windows of NannyML's
production period: its first half as it came (stable), its second half (more diesel
cars: a covariate shift the model handles, its RMSE even falls) and the first half with
every price 30% lower (concept drift). Five windows of each, seeded."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mlstack import scenarios
from mlstack.drift_command import drift_app
from monitoring.drift import compare
from monitoring.drift_summary import Summary
from pipeline.evaluate import Evaluation, evaluate
from pipeline.io import write_json
from pipeline.model import build_model, predict_frame
from pipeline.paths import IMPORTANCE_FILE, REFERENCE_FILE
from pipeline.prepare import prepare
from pipeline.settings import PROJECT_ROOT, Settings, parse_settings

pytestmark = pytest.mark.slow

EXAMPLE = PROJECT_ROOT / "examples" / "regression" / "params.yaml"
ROWS = 1200
SEEDS = range(5)


@pytest.fixture(scope="module")
def settings() -> Settings:
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["evaluate"]["importance_repeats"] = 1
    return parse_settings(raw, root=PROJECT_ROOT)


@pytest.fixture(scope="module")
def scored(settings: Settings) -> tuple[object, Evaluation]:
    cars = pd.read_parquet(PROJECT_ROOT / "data/raw/car_price/reference.parquet")
    train, test = prepare(cars, settings.data)
    features = settings.data.features
    model = build_model(features, settings.train, 0, "regression")
    model.fit(train[features.all], train[settings.data.target])
    return model, evaluate(model, test, pd.DataFrame(), settings, model_name="c", model_version="1")


def window(settings: Settings, scored: tuple[object, Evaluation], name: str, seed: int):
    """``ROWS`` rows of scenario ``name`` as the service captures them, prices joined."""
    model, evaluation = scored
    scenario = settings.scenarios[name].model_copy(update={"seed": seed})
    reseeded = settings.model_copy(update={"scenarios": {name: scenario}})
    rows, prices = scenarios.load(reseeded, name)
    assert prices is not None
    rows = rows.head(ROWS)
    served = predict_frame(model, rows[settings.data.features.all], evaluation.interval)
    return pd.concat([rows, served], axis=1).assign(price=prices.head(ROWS).to_numpy())


@pytest.fixture(scope="module")
def verdicts(settings: Settings, scored: tuple[object, Evaluation]) -> dict[str, list[Summary]]:
    _, evaluation = scored
    return {
        name: [
            compare(
                evaluation.reference,
                window(settings, scored, name, seed),
                settings,
                importance=evaluation.importance,
            )
            for seed in SEEDS
        ]
        for name in ("production_early", "production_late", "price_drop")
    }


def count(summaries: list[Summary], verdict: str) -> int:
    found = {
        "drop": lambda s: s.performance.drop_detected,
        "concept": lambda s: s.concept_drift.detected,
        "coverage": lambda s: s.performance.coverage.detected,
        "data": lambda s: s.data_drift.detected,
    }[verdict]
    return sum(bool(found(s)) for s in summaries)


def test_stable_windows_raise_no_alarm(verdicts: dict[str, list[Summary]]) -> None:
    stable = verdicts["production_early"]
    assert count(stable, "drop") <= 1 and count(stable, "concept") <= 1
    assert count(stable, "coverage") <= 1 and count(stable, "data") <= 1
    summary = stable[0]
    performance = summary.performance
    assert performance.metric == "rmse" and performance.higher_is_better is False
    assert performance.lower_threshold is None
    assert performance.upper_threshold is not None
    assert performance.upper_threshold > performance.reference
    assert performance.coverage is not None and performance.coverage.nominal == 0.9
    assert summary.prediction_drift.columns["prediction"].method  # a numerical method


def test_a_price_drop_is_a_performance_drop_concept_drift_and_lost_coverage(
    verdicts: dict[str, list[Summary]],
) -> None:
    dropped = verdicts["price_drop"]
    assert count(dropped, "drop") >= 4
    assert count(dropped, "concept") >= 4
    assert count(dropped, "coverage") >= 4
    summary = dropped[0]
    assert summary.performance.realized > summary.performance.upper_threshold
    # the inputs did not move: the estimate stays where the reference is
    assert summary.performance.estimated_drop_detected is False
    assert summary.concept_drift.gap > summary.concept_drift.gap_threshold


def test_a_covariate_shift_the_model_handles_is_no_concept_drift(
    verdicts: dict[str, list[Summary]],
) -> None:
    shifted = verdicts["production_late"]
    assert count(shifted, "data") >= 4  # more diesel cars: the inputs moved
    assert count(shifted, "concept") <= 1
    assert count(shifted, "drop") == 0
    # the loss estimate follows the inputs: it falls with the realized loss
    for summary in shifted:
        performance = summary.performance
        assert performance.estimated < performance.reference
        assert abs(performance.estimated - performance.realized) < 100


def test_a_window_without_prices_is_estimated_but_not_judged_on_labels(
    settings: Settings, scored: tuple[object, Evaluation]
) -> None:
    _, evaluation = scored
    current = window(settings, scored, "production_early", 0).drop(columns="price")
    summary = compare(evaluation.reference, current, settings, importance=evaluation.importance)
    performance = summary.performance
    assert performance.estimated is not None and performance.realized is None
    assert performance.coverage is not None and performance.coverage.realized is None
    assert summary.concept_drift.detected is None


def test_a_price_that_is_no_number_in_current_exits_naming_it(
    settings: Settings, scored: tuple[object, Evaluation], tmp_path: Path
) -> None:
    _, evaluation = scored
    evaluation.reference.to_parquet(_at(tmp_path / REFERENCE_FILE))
    write_json({"metric": "rmse", "importance": evaluation.importance}, tmp_path / IMPORTANCE_FILE)
    params = yaml.safe_load(EXAMPLE.read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    current = window(settings, scored, "production_early", 0).astype({"price": object})
    current.loc[3, "price"] = "cheap"
    current.to_csv(tmp_path / "current.csv", index=False)  # Parquet holds no such mix
    result = CliRunner().invoke(
        drift_app,
        [
            "run",
            "--current",
            str(tmp_path / "current.csv"),
            "--no-mlflow",
            "--no-workspace",
            "--json",
        ],
        env={"MLSTACK_PARAMS": str(tmp_path / "params.yaml")},
    )
    assert result.exit_code in (1, 2), result.output
    assert "'price'" in result.output and "cheap" in result.output


def _at(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
