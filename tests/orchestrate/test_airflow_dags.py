"""The Airflow DAGs (deploy/airflow/dags, from `mlstack orchestrate airflow`) in Airflow's own
locked environment, installed here with `uv sync --project deploy/airflow --locked`: both
import, the training DAG runs the real stages on a project copy and the monitoring DAG the real
drift job on it; a failing stage or drift run fails the DAG run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitoring.capture import PREDICTIONS, capture_path, storable_frame, write_frame
from monitoring.drift_job.rescore import score_with_champion
from tests.conftest import ROOT, Project, employment_sample, make_project
from tests.monitoring.conftest import covariate_shift

pytestmark = [pytest.mark.slow]

AIRFLOW = ROOT / "deploy" / "airflow"


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Airflow's env synced from its lock, and an AIRFLOW_HOME with a migrated SQLite db."""
    uv = shutil.which("uv")
    assert uv, "uv is missing: `make install`"
    synced = subprocess.run(
        [uv, "sync", "--project", str(AIRFLOW), "--locked", "-q"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert synced.returncode == 0, synced.stderr
    home = tmp_path_factory.mktemp("airflow")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(AIRFLOW / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "SCARF_ANALYTICS": "false",
        "DO_NOT_TRACK": "true",
        "MLSTACK_BIN": str(Path(sys.executable).parent),
    }
    run_airflow(env, "db", "migrate")
    yield env


def run_airflow(
    env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(AIRFLOW / ".venv" / "bin" / "airflow"), *args],
        env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    if check:
        assert done.returncode == 0, f"airflow {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done


def dag_test(
    airflow: dict[str, str], project: Project, dag: str
) -> subprocess.CompletedProcess[str]:
    env = {**airflow, **project.env, "MLSTACK_PROJECT": str(project.root)}
    env["PATH"] = airflow["PATH"] if "PATH" in airflow else env["PATH"]
    return run_airflow(env, "dags", "test", dag, check=False)


def told(done: subprocess.CompletedProcess[str]) -> str:
    """What the tasks' commands printed and how each task ended (Airflow logs the rest)."""
    keep = ("subprocess.py", "[DAG TEST]", "Marking task", "DagRun Finished")
    return "\n".join(line for line in done.stdout.splitlines() if any(k in line for k in keep))


def test_both_dags_import_without_errors(airflow: dict[str, str]) -> None:
    run_airflow(airflow, "dags", "reserialize")
    errors = run_airflow(airflow, "dags", "list-import-errors", "-o", "json")
    assert json.loads(errors.stdout.strip().splitlines()[-1]) == []
    listed = run_airflow(airflow, "dags", "list", "-o", "json")
    dags = {d["dag_id"] for d in json.loads(listed.stdout.strip().splitlines()[-1])}
    assert dags == {"mlstack_training", "mlstack_monitoring"}


def test_a_failing_stage_fails_the_training_run(airflow: dict[str, str], tmp_path: Path) -> None:
    project = make_project(
        tmp_path, employment_sample(2_000), lambda p: p["data"].update(target="NO_SUCH_COLUMN")
    )
    done = dag_test(airflow, project, "mlstack_training")
    assert done.returncode != 0
    assert not (project.root / "data" / "prepared" / "train.parquet").exists()


@pytest.fixture(scope="module")
def trained(airflow: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project copy trained by the training DAG itself (``airflow dags test``)."""
    project = make_project(tmp_path_factory.mktemp("trained"), employment_sample(4_000))
    done = dag_test(airflow, project, "mlstack_training")
    assert done.returncode == 0, told(done)
    return project


def test_the_training_dag_runs_the_real_stages(trained: Project) -> None:
    for made in ("data/prepared/train.parquet", "reports/metrics.json", "reports/package.json"):
        assert (trained.root / made).exists(), made
    train = json.loads((trained.root / "reports" / "train.json").read_text())
    assert train["run_id"]
    status = trained.dvc("status", "--json")
    assert json.loads(status.stdout) == {}, "every stage ran: dvc has nothing left to do"


def test_the_monitoring_dag_runs_the_drift_job(airflow: dict[str, str], trained: Project) -> None:
    """Nothing captured yet: the real drift job judges an empty window (no verdict), so the
    retrain is short-circuited and the run succeeds; the run is in the project's own reports
    (its params.yaml, not this checkout's)."""
    done = dag_test(airflow, trained, "mlstack_monitoring")
    assert done.returncode == 0, told(done)
    summaries = list((trained.root / "reports" / "drift").glob("*/summary.json"))
    assert len(summaries) == 1, "the drift job wrote no run in the project"
    summary = json.loads(summaries[0].read_text())
    assert summary["drift_detected"] is False
    assert "drift_flagged" in done.stdout + done.stderr


def test_a_failing_drift_run_fails_the_monitoring_run(
    airflow: dict[str, str], trained: Project, tmp_path: Path
) -> None:
    """No reference set: the drift job exits non-zero, and so does the DAG run (retrain is
    never reached)."""
    project = trained.copy_to(tmp_path / "broken")
    broken = project.root
    shutil.rmtree(broken / "data" / "reference")
    done = dag_test(airflow, project, "mlstack_monitoring")
    assert done.returncode != 0, done.stdout[-3000:]
    assert not list((broken / "reports" / "drift").glob("*/summary.json"))


def test_drift_in_the_window_reaches_the_retrain_step(
    airflow: dict[str, str], trained: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shifted inputs in the capture log (written as the service writes them, no labels): the
    drift run flags drift, so the DAG goes on to ``mlstack retrain``, which refuses for too
    few labels (exit 2) and is skipped, not failed."""
    project = trained.copy_to(tmp_path / "drifted")
    copy = project.root
    settings = project.settings
    rows = covariate_shift(employment_sample(2_000, seed=7))
    now = datetime.now(UTC)
    rows["request_id"] = [f"r{i}" for i in range(len(rows))]
    rows["timestamp"] = [now - timedelta(hours=2, seconds=-i) for i in range(len(rows))]
    rows["model_name"] = settings.model.name
    rows["model_version"] = ""
    features = settings.data.features
    served = rows[[*features.numerical, *features.categorical, *rows.columns[-4:]]]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", project.tracking_uri)
    served, champion = score_with_champion(served, settings)
    served["model_version"] = champion.version
    write_frame(
        capture_path(settings),
        PREDICTIONS,
        storable_frame(PREDICTIONS, served, settings.data.features.numerical),
    )
    done = dag_test(airflow, project, "mlstack_monitoring")
    assert done.returncode == 0, told(done)
    (summary,) = (copy / "reports" / "drift").glob("*/summary.json")
    assert json.loads(summary.read_text())["drift_detected"] is True
    ran = [line for line in told(done).splitlines() if "Running command" in line]
    assert any("mlstack retrain --json" in line for line in ran), "the retrain step never ran"
    assert '"status": "refused"' in told(done), "retrain ran without the labels it needs"
    assert "Command exited with return code 2" in told(done)
