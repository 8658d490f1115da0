"""The whole monitoring loop against real servers, all on 127.0.0.1 with free ports.

``bentoml serve`` answers predictions and feedback and writes the capture log; the
drift job (``mlstack drift run`` in its own process) judges that log against the
reference set the pipeline wrote for the same champion and pushes to a real
Pushgateway; a real Prometheus, configured from the shipped ``prometheus.yml`` with the
test's ports and loading the shipped ``alerts.yml``, scrapes the service and the
Pushgateway. Then Prometheus's HTTP API must return the drift series, and every query of
the Grafana dashboard a classifier feeds must return data (a regressor's own panels:
tests/integration/test_regression_example.py). Waits poll until a condition holds or a
generous deadline passes; no timings are asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from prometheus_harness import (
    dashboard_queries,
    query,
    start_prometheus,
    start_pushgateway,
    stop,
    wait_for,
)
from serving_harness import Champion, Server, write_params

from monitoring.drift_metrics import series_for
from pipeline.environment import TELEMETRY_OFF
from pipeline.settings import PROJECT_ROOT, load_settings
from tests.conftest import Project

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVED_ROWS = 1000  # drift.min_rows: fewer would be insufficient_data


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, process = start_pushgateway(tmp_path_factory.mktemp("pushgateway"))
    yield url
    stop(process)


@dataclass(frozen=True)
class Served:
    server: Server
    since: datetime  # the session's server is shared: this module's rows start here


@pytest.fixture(scope="module")
def served(server: Server) -> Served:
    """Rows of 2016 sent through /predict, and their true labels through /feedback."""
    frame = pd.read_parquet(PROJECT_ROOT / "data" / "raw" / "production_2016_2018.parquet")
    labels = pd.read_parquet(PROJECT_ROOT / "data" / "raw" / "production_2016_2018_labels.parquet")
    frame = frame[frame["year"] == 2016].sample(SERVED_ROWS, random_state=0)
    frame = frame.merge(labels, on="id")
    from mlstack.replay import feature_records

    rows = feature_records(frame, server.settings)
    since = datetime.now(UTC)
    request_ids: list[str] = []
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for start_row in range(0, len(rows), 100):
            answer = client.post("/predict", json={"instances": rows[start_row : start_row + 100]})
            assert answer.status_code == 200, answer.text
            request_ids += [p["request_id"] for p in answer.json()["predictions"]]
        feedback = [
            {"request_id": rid, "label": int(label)}
            for rid, label in zip(request_ids, frame["employed"], strict=True)
        ]
        answer = client.post("/feedback", json={"labels": feedback})
        assert answer.status_code == 200, answer.text
        bad = client.post("/predict", json={"instances": [{"AGEP": "old"}]})
        assert 400 <= bad.status_code < 500
    from monitoring.capture import read_window

    def captured() -> bool:
        window = read_window(server.capture, server.settings, since=since)
        mine = window[window["request_id"].isin(request_ids)]
        target = server.settings.data.target
        return len(mine) == SERVED_ROWS and bool(mine[target].notna().all())

    wait_for("the capture log to hold every row and label", captured)
    return Served(server, since)


@pytest.fixture(scope="module")
def drift_run(
    served: Served,
    pipeline_project: Project,
    pushgateway: str,
    base_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """``mlstack drift run`` on the service's capture log, pushing to the Pushgateway.

    The reference set is the one the pipeline's evaluate stage wrote for this champion.
    """
    from pipeline.paths import REFERENCE_FILE

    folder = tmp_path_factory.mktemp("drift-job")
    params = write_params(folder, capture={"path": str(served.server.capture)})
    env = {**base_env, **TELEMETRY_OFF, "MLSTACK_PUSHGATEWAY_URL": pushgateway}
    env["MLSTACK_PARAMS"] = str(params)
    done = subprocess.run(
        [
            sys.executable, "-m", "mlstack.cli", "drift", "run",
            "--reference", str(pipeline_project.root / REFERENCE_FILE),
            "--since", served.since.isoformat(),
            "--no-workspace", "--no-mlflow",  # both covered by tests/monitoring
            "--json",
        ],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    assert Path(summary["folder"]).parent == folder / "reports" / "drift"
    return summary


@pytest.fixture(scope="module")
def prometheus(
    served: Served, pushgateway: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real Prometheus with the shipped config, pointed at the test's ports."""
    folder = tmp_path_factory.mktemp("prometheus")
    url, process = start_prometheus(folder, served.server.url, pushgateway)
    yield url
    stop(process)


def test_the_job_judged_the_served_window(drift_run: dict[str, Any], champion: Champion) -> None:
    assert drift_run["status"] == "ok"
    assert drift_run["rows"]["current"] == SERVED_ROWS
    assert drift_run["rows"]["labeled"] == SERVED_ROWS
    assert drift_run["model"]["version"] == champion.version
    assert drift_run["data_drift"]["detected"] is False
    assert drift_run["concept_drift"]["detected"] is False


def test_prometheus_scrapes_the_service(prometheus: str) -> None:
    up = wait_for(
        "the service target to be up",
        lambda: [r for r in query(prometheus, 'up{job="mlstack-service"}') if r["value"][1] == "1"],
    )
    assert up
    assert wait_for(
        "BentoML's request counter for /predict",
        lambda: query(prometheus, 'bentoml_service_request_total{endpoint="/predict"}'),
    )


def test_prometheus_returns_the_pushed_drift_series(
    prometheus: str, drift_run: dict[str, Any], champion: Champion
) -> None:
    found = wait_for(
        "the pushed drift verdicts",
        lambda: query(prometheus, 'mlstack_drift_detected{kind="data"}'),
    )
    labels = found[0]["metric"]
    assert labels["job"] == "mlstack_drift", "honor_labels keeps the pushed job label"
    assert labels["model_version"] == champion.version
    assert found[0]["value"][1] == "0"
    for name in series_for("classification"):
        assert query(prometheus, name), name
    columns = {r["metric"]["column"] for r in query(prometheus, "mlstack_drift_column_score")}
    assert set(load_settings().data.features.all) <= columns


def test_prometheus_loaded_the_alert_rules(prometheus: str) -> None:
    answer = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()
    names = {rule["name"] for group in answer["data"]["groups"] for rule in group["rules"]}
    assert {"MlstackDataDrift", "MlstackConceptDrift", "MlstackDriftJobStale"} <= names
    assert {"MlstackServingErrorRate", "MlstackServingLatency"} <= names


@pytest.mark.parametrize(("title", "expr"), dashboard_queries("classification"))
def test_every_dashboard_query_returns_data(
    prometheus: str, drift_run: dict[str, Any], title: str, expr: str
) -> None:
    concrete = expr.replace("$model", ".*")
    assert wait_for(f"data for panel {title!r}: {concrete}", lambda: query(prometheus, concrete))
