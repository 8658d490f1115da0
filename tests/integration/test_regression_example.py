"""The shipped regression example, end to end with real processes: a project retargeted to
the car-price table by ``examples/regression/params.yaml`` alone runs ``dvc repro``
(a regressor, RMSE/MAE/R², the interval calibrated, promoted behind the lower-is-better
gate, packaged), ``bentoml serve`` answers predictions with intervals, ``mlstack replay``
sends production traffic and its prices to ``/feedback``, and ``mlstack drift run`` judges
the captured window (realized and estimated RMSE, interval coverage), then a window whose
prices fell 30% (concept drift, the coverage lost).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml
from prometheus_harness import (
    dashboard_queries,
    query,
    start_prometheus,
    start_pushgateway,
    stop,
    wait_for,
)
from serving_harness import Server, run_in_project, start_server

from monitoring.drift_metrics import series_for
from pipeline.environment import TELEMETRY_OFF
from pipeline.settings import PROJECT_ROOT
from tests.conftest import Project, employment_sample, make_project, wait_settled

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLE = PROJECT_ROOT / "examples" / "regression" / "params.yaml"
ROWS = 1200  # at least drift.min_rows: the window gets verdicts


@dataclass
class Example:
    project: Project
    server: Server
    replayed: dict[str, Any]


def mlstack(project: Project, *args: str) -> tuple[int, dict[str, Any], str]:
    done = project.run(sys.executable, "-m", "mlstack.cli", *args, check=False)
    lines = done.stdout.strip().splitlines()
    return done.returncode, (json.loads(lines[-1]) if lines else {}), done.stderr


def retarget(project: Project, capture: Path) -> None:
    """The example's params over the project's, as the README says (`cp`), with a smaller
    model and one importance shuffle to keep the test short; the car-price files beside."""
    shutil.copytree(PROJECT_ROOT / "data/raw/car_price", project.root / "data/raw/car_price")
    params = yaml.safe_load(EXAMPLE.read_text())
    params["train"]["hist_gradient_boosting"]["max_iter"] = 60
    params["evaluate"]["importance_repeats"] = 1
    params["capture"]["path"] = str(capture)
    (project.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    project.run("git", "add", "-A")
    project.run("git", "commit", "-qm", "retarget to the regression example")


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    folder = tmp_path_factory.mktemp("regression")
    capture = folder / "server" / "capture"
    project = make_project(folder / "project", employment_sample(100))
    retarget(project, capture)
    project.env["BENTOML_HOME"] = str(folder / "bentoml")
    project.dvc("repro", "promote")
    env = {**project.env, **TELEMETRY_OFF}
    run_in_project(project.root, env, "-m", "pipeline.package", "--model-only")
    server = start_server(
        folder / "server", env, base=project.root / "params.yaml", capture={"path": str(capture)}
    )
    try:
        code, replayed, err = mlstack(
            project,
            *("replay", "--scenario", "production_early", "--limit", str(ROWS)),
            *("--url", server.url, "--json"),
        )
        assert code == 0, err
        yield Example(project, server, replayed)
    finally:
        server.stop()


def test_dvc_repro_trains_and_promotes_a_regressor(example: Example) -> None:
    root = example.project.root
    metrics = json.loads((root / "reports" / "metrics.json").read_text())
    assert {"rmse", "mae", "r2", "mape"} <= set(metrics)
    assert metrics["rmse"] < 1500 and metrics["r2"] > 0.8  # the gate's bar, and a real fit
    assert 0.85 <= metrics["interval_coverage"] <= 0.95  # nominal 0.9 on held-out rows
    from mlflow import MlflowClient

    uri = example.project.tracking_uri
    settings = example.project.settings
    version = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(
        settings.model.name, settings.promote.alias
    )
    assert float(version.tags["mlstack.interval.half_width"]) > 0
    assert float(version.tags["mlstack.interval.coverage"]) == 0.9


def test_the_service_answers_a_price_with_its_interval(example: Example) -> None:
    rows = pd.read_parquet(PROJECT_ROOT / "data/raw/car_price/production.parquet").head(3)
    features = example.project.settings.data.features.all
    instances = json.loads(rows[features].to_json(orient="records"))
    answer = httpx.post(f"{example.server.url}/predict", json={"instances": instances}, timeout=30)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert len(predictions) == 3
    for row in predictions:
        assert isinstance(row["prediction"], float)
        assert row["interval"]["lower"] < row["prediction"] < row["interval"]["upper"]


def test_replay_sends_prices_as_labels(example: Example) -> None:
    assert example.replayed["ok"] == ROWS and example.replayed["labels_accepted"] == ROWS


@pytest.mark.parametrize("label", ["cheap", True, None])
def test_a_label_that_is_no_number_is_refused_naming_it(example: Example, label: Any) -> None:
    body = {"labels": [{"request_id": "r-unknown", "label": label}]}
    answer = httpx.post(f"{example.server.url}/feedback", json=body, timeout=30)
    assert answer.status_code == 400, answer.text
    assert '"labels"' in answer.text and '"label"' in answer.text


def drift_json(project: Project, *args: str) -> dict[str, Any]:
    code, summary, err = mlstack(project, "drift", "run", "--no-workspace", "--json", *args)
    assert code in (0, 3), err[-3000:]
    return summary


def test_the_captured_window_is_judged_on_rmse_and_coverage(example: Example) -> None:
    wait_settled(example.project.settings)
    summary = drift_json(example.project, "--last", "1h")
    assert summary["status"] == "ok", summary
    assert summary["rows"]["labeled"] == ROWS
    performance = summary["performance"]
    assert performance["metric"] == "rmse" and performance["higher_is_better"] is False
    assert performance["realized"] is not None and performance["estimated"] is not None
    assert performance["drop_detected"] is False
    assert performance["coverage"]["nominal"] == 0.9
    assert performance["coverage"]["detected"] is False
    assert summary["concept_drift"]["detected"] is False


def test_a_price_drop_is_a_performance_drop_concept_drift_and_lost_coverage(
    example: Example, tmp_path: Path
) -> None:
    from mlstack import scenarios

    settings = example.project.settings
    rows, prices = scenarios.load(settings, "price_drop")
    assert prices is not None
    current = tmp_path / "price_drop.parquet"
    rows.assign(**{settings.data.target: prices}).head(ROWS).to_parquet(current)
    summary = drift_json(example.project, "--current", str(current))
    performance = summary["performance"]
    assert performance["drop_detected"] is True
    assert performance["realized"] > performance["upper_threshold"]
    assert performance["coverage"]["detected"] is True
    assert performance["coverage"]["realized"] < 0.9
    assert summary["concept_drift"]["detected"] is True


@pytest.fixture(scope="module")
def prometheus(example: Example, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The shipped Prometheus config scraping the regressor's service and a Pushgateway that
    the drift job pushed the captured window's verdicts to."""
    folder = tmp_path_factory.mktemp("regression-prometheus")
    gateway, gateway_process = start_pushgateway(folder)
    url, process = start_prometheus(folder, example.server.url, gateway)
    try:
        wait_settled(example.project.settings)
        env = {**example.project.env, "MLSTACK_PUSHGATEWAY_URL": gateway}
        done = subprocess.run(
            [sys.executable, "-m", "mlstack.cli", "drift", "run", "--no-workspace", "--json",
             "--last", "1h"],
            cwd=example.project.root, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        yield url
    finally:
        stop(process)
        stop(gateway_process)


def test_prometheus_holds_a_regressors_drift_series(prometheus: str) -> None:
    wait_for("the pushed drift verdicts", lambda: query(prometheus, "mlstack_drift_detected"))
    for name in series_for("regression"):
        assert query(prometheus, name), name
    coverage = {
        r["metric"]["kind"]: float(r["value"][1])
        for r in query(prometheus, "mlstack_drift_interval_coverage")
    }
    assert coverage["nominal"] == 0.9 and 0 < coverage["realized"] <= 1
    (threshold,) = query(prometheus, "mlstack_performance_upper_threshold")
    assert threshold["metric"]["metric"] == "rmse" and float(threshold["value"][1]) > 0


@pytest.mark.parametrize(("title", "expr"), dashboard_queries("regression"))
def test_every_dashboard_query_a_regressor_feeds_returns_data(
    prometheus: str, title: str, expr: str
) -> None:
    concrete = expr.replace("$model", ".*")
    assert wait_for(f"data for panel {title!r}: {concrete}", lambda: query(prometheus, concrete))


def test_every_dashboard_query_is_fed_by_a_task() -> None:
    fed = set(dashboard_queries("classification")) | set(dashboard_queries("regression"))
    assert fed == set(dashboard_queries())
    assert any("mlstack_predicted_value" in expr for _, expr in dashboard_queries("regression"))
    assert not any(
        "mlstack_predicted_value" in expr for _, expr in dashboard_queries("classification")
    )


def test_retrain_learns_from_the_captured_prices_behind_the_rmse_gate(example: Example) -> None:
    """Last in the file: it moves the registry on. The window's prices train a candidate
    judged on RMSE, lower is better, on the recent rows held out and the test split."""
    project = example.project
    code, out, err = mlstack(project, "retrain", "--last", "1h", "--json")
    assert code == 0, err[-3000:]
    assert out["status"] == "retrained", out
    recent = pd.read_parquet(project.root / "data/retrain/recent.parquet")
    assert recent[project.settings.data.target].dtype == "float64" and len(recent) == ROWS
    promotion = json.loads((project.root / "reports" / "promotion.json").read_text())
    assert promotion["metric"] == "rmse" and promotion["judged_on"] == "recent"
    for key in ("candidate", "champion"):
        assert 500 < promotion[f"{key}_score"] < 1500  # RMSE in prices, not a probability
    assert out["decision"] in ("promoted", "rejected")
