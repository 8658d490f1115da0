"""A regressor through the real stages (``dvc repro`` prepare -> promote, then the package
stage into a temporary BentoML store) on 3,000 car prices, with a real MLflow sqlite
store: the metrics, the interval on the registered version and in the Bento model's
labels, the reference set, and the stages' refusals (a price that is no number, a test
split too small for the interval, an RMSE above the gate's bar)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.interval import COVERAGE_TAG, HALF_WIDTH_TAG, Interval
from pipeline.schema import INTERVAL_LOWER, INTERVAL_UPPER, PREDICTION
from tests.conftest import ROOT, Project, make_project

pytestmark = pytest.mark.slow

EXAMPLE = ROOT / "examples" / "regression" / "params.yaml"
RAW = Path("data/raw/reference_2015.parquet")  # where make_project puts the training table


def car_sample(rows: int = 3000) -> pd.DataFrame:
    cars = pd.read_parquet(ROOT / "data" / "raw" / "car_price" / "reference.parquet")
    return cars.sample(n=rows, random_state=0).reset_index(drop=True)


def regression_params(params: dict[str, Any]) -> None:
    """The shipped example's params, made small: the table make_project wrote, fewer trees."""
    params.clear()
    params.update(yaml.safe_load(EXAMPLE.read_text()))
    params["data"]["path"] = str(RAW)
    params["train"]["hist_gradient_boosting"]["max_iter"] = 60
    params["evaluate"].update(importance_repeats=1, importance_rows=1000)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    made = make_project(tmp_path_factory.mktemp("regression"), car_sample(), regression_params)
    made.env["BENTOML_HOME"] = str(tmp_path_factory.mktemp("bentoml"))
    made.dvc("repro", "promote")
    yield made


def report(project: Project, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((project.root / "reports" / name).read_text())
    return loaded


def version_tags(project: Project, version: str = "1") -> dict[str, str]:
    from mlflow import MlflowClient

    registry = MlflowClient(tracking_uri=project.tracking_uri, registry_uri=project.tracking_uri)
    found = registry.get_model_version(project.settings.model.name, version)
    return dict(found.tags)


def test_repro_logs_rmse_mae_r2_and_the_interval(project: Project) -> None:
    metrics = report(project, "metrics.json")
    assert {"rmse", "mae", "r2", "mape", "interval_coverage", "interval_half_width"} <= set(metrics)
    assert "per_class" not in metrics and "roc_auc" not in metrics
    assert metrics["rmse"] >= metrics["mae"] > 0 and 0.7 < metrics["r2"] < 1
    # nominal 0.9, measured on the ~375 test rows the calibration did not see (sd ~0.016)
    assert 0.84 <= metrics["interval_coverage"] <= 0.96
    interval = Interval.from_tags(version_tags(project))
    assert interval == Interval(metrics["interval_half_width"], 0.9)
    assert version_tags(project)[COVERAGE_TAG] == "0.9"
    plots = project.root / "reports" / "plots"
    for name in ("predicted_actual", "residuals"):
        assert (plots / f"{name}.png").stat().st_size > 0
        assert len(pd.read_csv(plots / f"{name}.csv")) > 100
    assert not (plots / "roc.csv").exists()


def test_the_reference_set_holds_prices_predictions_and_bounds(project: Project) -> None:
    reference = pd.read_parquet(project.root / "data" / "reference" / "reference.parquet")
    settings = project.settings
    expected = {
        *settings.data.features.all,
        "price",
        PREDICTION,
        INTERVAL_LOWER,
        INTERVAL_UPPER,
        "model_name",
        "model_version",
    }
    assert expected <= set(reference.columns)
    assert not [c for c in reference.columns if c.startswith("proba_")]
    for column in ("price", PREDICTION, INTERVAL_LOWER, INTERVAL_UPPER):
        assert reference[column].dtype == "float64", column
    half_width = float(version_tags(project)[HALF_WIDTH_TAG])
    assert np.allclose(reference[PREDICTION] - reference[INTERVAL_LOWER], half_width)
    importance = json.loads((project.root / "data/reference/importance.json").read_text())
    assert importance["metric"] == "rmse"
    # on RMSE (a neg-RMSE scorer), positive-is-important: a car's age drives its price
    ranked = sorted(importance["importance"], key=importance["importance"].get, reverse=True)
    assert set(ranked) == set(settings.data.features.all)
    assert ranked[0] == "car_age" and importance["importance"]["car_age"] > 0


def test_the_first_regressor_is_promoted_under_the_rmse_bar(project: Project) -> None:
    promotion = report(project, "promotion.json")
    assert promotion["metric"] == "rmse" and promotion["decision"] == "promoted"
    assert promotion["candidate_score"] == pytest.approx(report(project, "metrics.json")["rmse"])


def test_the_package_stage_copies_the_interval_into_the_bento_labels(project: Project) -> None:
    tag = project.run(sys.executable, "-m", "pipeline.package", "--model-only").stdout.split()[-1]
    script = (
        "import bentoml, json, sys\n"
        "model = bentoml.models.get(sys.argv[1])\n"
        "print(json.dumps({'labels': model.info.labels, 'metadata': model.info.metadata}))\n"
    )
    shown = json.loads(project.run(sys.executable, "-c", script, tag).stdout.splitlines()[-1])
    tags = version_tags(project)
    for where in ("labels", "metadata"):
        assert Interval.from_tags(shown[where]) == Interval.from_tags(tags), where
        assert shown[where]["version"] == "1"


def test_a_price_above_the_rmse_threshold_is_refused_saying_above(project: Project) -> None:
    project.edit_params(lambda p: p["promote"].update(threshold=100.0))
    try:
        project.dvc("repro", "promote")
        promotion = report(project, "promotion.json")
        assert promotion["decision"] == "rejected"
        assert promotion["reason"].startswith("candidate rmse ")
        assert promotion["reason"].endswith(" is above threshold 100.0")
    finally:
        project.edit_params(lambda p: p["promote"].update(threshold=1500.0))


def test_a_test_split_too_small_for_the_coverage_exits_2_naming_the_key(
    project: Project,
) -> None:
    project.edit_params(lambda p: p["evaluate"].update(interval_coverage=0.999))
    try:
        done = project.run(sys.executable, "-m", "pipeline.evaluate", check=False)
    finally:
        project.edit_params(lambda p: p["evaluate"].update(interval_coverage=0.9))
    assert done.returncode == 2, done.stderr
    assert "evaluate.interval_coverage" in done.stderr
    assert "calibration rows cannot give a 100% interval" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("bad", "shown"),
    [("4277.5 EUR", "'4277.5 EUR'"), (float("nan"), "null"), (float("inf"), "inf")],
)
def test_a_price_that_is_no_finite_number_stops_prepare_with_exit_2(
    project: Project, bad: object, shown: str
) -> None:
    raw = project.root / RAW
    original = raw.read_bytes()
    cars = pd.read_parquet(raw)
    if isinstance(bad, str):
        cars["price"] = cars["price"].astype(str)
    cars.loc[7, "price"] = bad
    cars.to_parquet(raw, index=False)
    try:
        done = project.run(sys.executable, "-m", "pipeline.prepare", check=False)
    finally:
        raw.write_bytes(original)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    line = done.stderr.strip()
    assert line.startswith(f"prepare: {RAW}: target column 'price'") and shown in line


def test_a_new_coverage_re_evaluates_the_same_run_and_retags_the_version(
    project: Project,
) -> None:
    before = version_tags(project)
    project.edit_params(lambda p: p["evaluate"].update(interval_coverage=0.8))
    try:
        project.dvc("repro", "evaluate")
        after = Interval.from_tags(version_tags(project))
        assert after is not None and after.coverage == 0.8
        assert after.half_width < float(before[HALF_WIDTH_TAG])
        assert report(project, "metrics.json")["interval_half_width"] == after.half_width
    finally:
        project.edit_params(lambda p: p["evaluate"].update(interval_coverage=0.9))
        project.dvc("repro", "evaluate")
    assert version_tags(project) == before
