"""``mlstack drift run`` and ``schedule`` end to end, in process, in a temporary project.

A temporary ``params.yaml`` makes the temp folder the project root, so reports, state,
lock and workspace land there. The reference set is a 4,000-row slice of the session's,
the current windows 1,500 rows, so each Evidently run takes a few seconds.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from filelock import FileLock
from typer.testing import CliRunner

from mlstack.drift_command import drift_app, next_fire
from mlstack.window import parse_duration, parse_time
from pipeline.environment import TELEMETRY_OFF
from pipeline.io import write_json
from pipeline.paths import IMPORTANCE_FILE, REFERENCE_FILE
from pipeline.schema import PREDICTION
from pipeline.settings import PROJECT_ROOT, Settings, load_settings
from tests.monitoring.conftest import DriftData, covariate_shift, write_params

pytestmark = pytest.mark.slow

runner = CliRunner()


def invoke(*args: str, params: str) -> Any:
    """``mlstack drift ARGS`` with ``params`` as the params file (``MLSTACK_PARAMS``)."""
    env = {"MLSTACK_PARAMS": params}
    return runner.invoke(drift_app, list(args), env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def project(drift_data: DriftData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("drift-project")
    write_params(root)
    reference = root / REFERENCE_FILE
    reference.parent.mkdir(parents=True)
    drift_data.reference.sample(4000, random_state=0).to_parquet(reference)
    write_json({"metric": "roc_auc", "importance": drift_data.importance}, root / IMPORTANCE_FILE)
    stable = drift_data.year(2016).sample(1500, random_state=0)
    # An upstream break: SCHL arrives empty (the rows keep their predictions).
    stable.assign(SCHL=None).to_parquet(root / "empty_column.parquet")
    stable.to_parquet(root / "stable.parquet")
    covariate_shift(stable).to_parquet(root / "shifted.parquet")
    stable.head(20).to_parquet(root / "tiny.parquet")
    stable.assign(income=1.0).to_parquet(root / "extra.parquet")
    return root


def params(project: Path) -> str:
    return str(project / "params.yaml")


def settings_of(project: Path) -> Settings:
    return load_settings(project / "params.yaml")


def latest_summary(project: Path) -> tuple[Path, dict[str, Any]]:
    base = project / "reports" / "drift"
    latest = json.loads((base / "latest.json").read_text())
    folder = base / latest["folder"]
    return folder, json.loads((folder / "summary.json").read_text())


def quiet(*extra: str) -> list[str]:
    return ["--no-mlflow", "--no-workspace", *extra]


def test_run_on_a_file_writes_report_summary_latest_and_textfile(project: Path) -> None:
    textfile = project / "metrics" / "drift.prom"
    result = invoke(
        "run",
        "--current",
        str(project / "stable.parquet"),
        "--textfile",
        str(textfile),
        "--fail-on-drift",
        *quiet(),
        params=params(project),
    )
    assert result.exit_code == 0, result.output
    folder, summary = latest_summary(project)
    assert summary["status"] == "ok"
    assert summary["drift_detected"] is False
    assert summary["rows"] == {"reference": 4000, "current": 1500, "labeled": 1500}
    assert summary["concept_drift"]["detected"] is False
    assert summary["performance"]["detected"] is False
    assert summary["data_drift"]["weights"] == "importance"
    assert summary["window"]["source"].endswith("stable.parquet")
    html = (folder / "report.html").read_text()
    assert "<html" in html and 'src="http' not in html, "the report opens offline"
    assert (folder / "performance.html").exists()
    assert "mlstack_drift_share" in textfile.read_text()
    assert not (project / "reports" / "drift" / "state.json").exists(), "a file is no window"


def test_fail_on_drift_exits_3_on_shifted_rows(project: Path) -> None:
    shifted = str(project / "shifted.parquet")
    result = invoke("run", "--current", shifted, *quiet(), params=params(project))
    assert result.exit_code == 0, result.output
    result = invoke(
        "run",
        "--current",
        shifted,
        "--fail-on-drift",
        *quiet(),
        params=params(project),
    )
    assert result.exit_code == 3, result.output
    _, summary = latest_summary(project)
    drifted = {c for c, v in summary["data_drift"]["columns"].items() if v["detected"]}
    assert drifted == {"AGEP", "MAR"}


def test_an_empty_column_completes_the_run_and_names_it(project: Path) -> None:
    result = invoke(
        "run",
        "--current",
        str(project / "empty_column.parquet"),
        "--fail-on-drift",
        "--json",
        *quiet(),
        params=params(project),
    )
    assert result.exit_code in (0, 3), result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "ok"
    quality = summary["data_quality"]
    assert quality["detected"] is True
    assert [c for c, v in quality["columns"].items() if v["detected"]] == ["SCHL"]
    assert summary["data_drift"]["columns"]["SCHL"]["missing_share"] == 1.0
    assert summary["drift_detected"] is True
    html = (Path(summary["folder"]) / "report.html").read_text()
    assert "mlstack-verdicts" in html, "the verdicts section leads Evidently's report"


def test_insufficient_data_exits_0_and_is_still_exported(project: Path) -> None:
    textfile = project / "tiny.prom"
    result = invoke(
        "run",
        "--current",
        str(project / "tiny.parquet"),
        "--fail-on-drift",
        "--textfile",
        str(textfile),
        *quiet(),
        params=params(project),
    )
    assert result.exit_code == 0, result.output
    folder, summary = latest_summary(project)
    assert summary["status"] == "insufficient_data"
    assert summary["data_drift"]["detected"] is None
    assert "Insufficient data" in (folder / "report.html").read_text()
    assert 'mlstack_drift_rows{kind="current"' in textfile.read_text()


def test_column_mismatch_fails_naming_the_column(project: Path) -> None:
    before = json.loads((project / "reports" / "drift" / "latest.json").read_text())
    result = invoke(
        "run",
        "--current",
        str(project / "extra.parquet"),
        *quiet(),
        params=params(project),
    )
    assert result.exit_code == 1
    assert "income" in result.output + (result.stderr or "")
    after = json.loads((project / "reports" / "drift" / "latest.json").read_text())
    assert after == before, "a failed run does not move latest.json"


def test_a_failed_run_with_json_prints_one_json_error(project: Path, tmp_path: Path) -> None:
    """The probe's case: ``drift run --json`` printed nothing on stdout when the run failed."""
    args = ("run", "--current", str(project / "extra.parquet"), "--json", *quiet())
    result = invoke(*args, params=params(project))
    assert result.exit_code == 1
    failure = json.loads(result.stdout.strip().splitlines()[-1])
    assert failure["status"] == "failed" and failure["exit_code"] == 1
    assert "income" in failure["error"]
    bad = yaml.safe_load(Path(params(project)).read_text())
    bad["drift"]["columns"] = {"no_such_feature": {"method": "wasserstein"}}
    bad_file = Path(params(project)).parent / "bad-drift-params.yaml"
    bad_file.write_text(yaml.safe_dump(bad))
    refused = invoke(
        "run", "--current", str(project / "tiny.parquet"), "--json", params=str(bad_file)
    )
    assert refused.exit_code == 2
    failure = json.loads(refused.stdout.strip().splitlines()[-1])
    assert (failure["status"], failure["type"], failure["exit_code"]) == (
        "failed",
        "SettingsError",
        2,
    )
    assert "no_such_feature" in failure["error"]


def test_window_options_are_checked(project: Path) -> None:
    result = invoke(
        "run",
        "--current",
        str(project / "tiny.parquet"),
        "--last",
        "24h",
        params=params(project),
    )
    assert result.exit_code == 2
    assert invoke("run", "--last", "soon", params=params(project)).exit_code == 2


def test_a_held_lock_skips_the_run(project: Path) -> None:
    base = project / "reports" / "drift"
    folders = set(base.iterdir())
    with FileLock(str(base / ".drift.lock"), timeout=0):
        result = invoke(
            "run",
            "--current",
            str(project / "tiny.parquet"),
            *quiet(),
            params=params(project),
        )
    assert result.exit_code == 0
    assert set(base.iterdir()) == folders


def _capture(drift_data: DriftData, root: Path, served: datetime, rows: int, seed: int) -> None:
    from monitoring.capture import LABELS, PREDICTIONS, write_frame

    settings = settings_of(root)
    target = settings.data.target
    frame = drift_data.year(2017).sample(rows, random_state=seed).reset_index(drop=True)
    frame["request_id"] = [f"r{seed}-{i}" for i in range(rows)]
    frame["timestamp"] = pd.Timestamp(served)
    frame["model_name"] = settings.model.name
    frame["model_version"] = "3"
    labels = frame[["request_id", "timestamp", target]].head(rows // 2)
    labels = labels.rename(columns={target: "label"})
    path = settings.path(settings.capture.path)
    write_frame(path, PREDICTIONS, frame.drop(columns=[target, settings.data.id]))
    write_frame(path, LABELS, labels)


def test_capture_window_moves_the_state_on(drift_data: DriftData, tmp_path: Path) -> None:
    write_params(tmp_path)
    params_file = str(tmp_path / "params.yaml")
    state_file = tmp_path / "reports" / "drift" / "state.json"
    reference = tmp_path / REFERENCE_FILE
    reference.parent.mkdir(parents=True)
    drift_data.reference.sample(4000, random_state=0).to_parquet(reference)

    # Too few rows yet: judged as insufficient, and kept for the next window.
    _capture(drift_data, tmp_path, datetime.now(UTC) - timedelta(hours=1), 150, seed=5)
    assert invoke("run", *quiet(), params=params_file).exit_code == 0
    assert latest_summary(tmp_path)[1]["status"] == "insufficient_data"
    assert not state_file.exists()

    _capture(drift_data, tmp_path, datetime.now(UTC) - timedelta(minutes=30), 1050, seed=6)
    result = invoke("run", *quiet(), params=params_file)
    assert result.exit_code == 0, result.output
    _, summary = latest_summary(tmp_path)
    assert summary["status"] == "ok"
    assert summary["rows"]["current"] == 1200
    assert summary["rows"]["labeled"] == 75 + 525
    # --no-mlflow: the version the rows name, and no registry to name its training run.
    assert summary["model"] == {"name": "employment-classifier", "version": "3", "run_id": None}
    assert summary["window"]["since"] is None
    state = json.loads(state_file.read_text())
    assert state["until"] == summary["window"]["until"]

    # Nothing served since: the next run judges an empty window from the state on.
    result = invoke("run", *quiet(), params=params_file)
    assert result.exit_code == 0, result.output
    _, summary = latest_summary(tmp_path)
    assert summary["status"] == "insufficient_data"
    assert summary["rows"]["current"] == 0
    assert summary["window"]["since"] == state["until"]

    # An explicit window reads the same rows again and leaves the state alone.
    result = invoke("run", "--last", "2h", *quiet(), params=params_file)
    assert result.exit_code == 0, result.output
    assert latest_summary(tmp_path)[1]["rows"]["current"] == 1200
    assert json.loads(state_file.read_text()) == state


def test_schedule_goes_on_after_a_failed_run(tmp_path: Path) -> None:
    write_params(tmp_path)  # no reference set: every run fails
    result = invoke(
        "schedule",
        "--every",
        "1s",
        "--max-runs",
        "2",
        *quiet(),
        params=str(tmp_path / "params.yaml"),
    )
    assert result.exit_code == 1, "every run failed: the schedule says so"
    assert not (tmp_path / "reports" / "drift" / "latest.json").exists()


@pytest.mark.parametrize("runs", ["0", "-1"])
def test_schedule_needs_at_least_one_run(tmp_path: Path, runs: str) -> None:
    write_params(tmp_path)
    args = ("schedule", "--every", "1s", "--max-runs", runs, *quiet())
    assert invoke(*args, params=str(tmp_path / "params.yaml")).exit_code == 2


def test_schedule_runs_again_and_again(drift_data: DriftData, tmp_path: Path) -> None:
    write_params(tmp_path)
    reference = tmp_path / REFERENCE_FILE
    reference.parent.mkdir(parents=True)
    drift_data.reference.head(500).to_parquet(reference)
    result = invoke(
        "schedule",
        "--every",
        "1s",
        "--max-runs",
        "2",
        *quiet(),
        params=str(tmp_path / "params.yaml"),
    )
    assert result.exit_code == 0, result.output
    runs = [p for p in (tmp_path / "reports" / "drift").iterdir() if p.is_dir()]
    assert len(runs) == 2


def test_schedule_needs_exactly_one_of_every_and_cron(tmp_path: Path) -> None:
    write_params(tmp_path)
    assert invoke("schedule", params=str(tmp_path / "params.yaml")).exit_code == 2
    bad = invoke("schedule", "--cron", "every day", params=str(tmp_path / "params.yaml"))
    assert bad.exit_code == 2


def test_durations_times_and_cron() -> None:
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_time("2026-01-31T12:00") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert parse_time("2026-01-31T13:00+01:00") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    now = datetime(2026, 1, 31, 12, 7, tzinfo=UTC)
    assert next_fire(now, None, "*/15 * * * *") == datetime(2026, 1, 31, 12, 15, tzinfo=UTC)
    assert next_fire(now, timedelta(minutes=5), None) == now + timedelta(minutes=5)


@pytest.fixture(scope="module")
def champion(drift_data: DriftData, project: Path) -> tuple[str, str]:
    """The session's model registered as champion in a temporary MLflow store."""
    import mlflow

    from pipeline.tracking import log_skops_model

    uri = f"sqlite:///{project / 'mlflow.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = drift_data.settings.model.name
    experiment = mlflow.create_experiment(
        "training", artifact_location=(project / "mlartifacts" / "training").as_uri()
    )
    with mlflow.start_run(experiment_id=experiment):
        info = log_skops_model(drift_data.model, name, ["scikit-learn", "skops"])
    version = str(info.registered_model_version)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version)
    yield uri, version
    mp.undo()


def test_unscored_rows_are_scored_by_the_champion_and_logged(
    champion: tuple[str, str], project: Path, drift_data: DriftData
) -> None:
    import mlflow
    from evidently.ui.workspace import Workspace

    uri, version = champion
    raw = pd.read_parquet(PROJECT_ROOT / "data" / "raw" / "production_2016_2018.parquet")
    raw = raw[raw["year"] == 2018].sample(1200, random_state=0)
    assert PREDICTION in raw.columns, "the packager's own prediction column is dropped"
    batch = project / "unscored.csv"
    raw.to_csv(batch, index=False)

    result = invoke("run", "--current", str(batch), params=params(project))
    assert result.exit_code == 0, result.output
    folder, summary = latest_summary(project)
    client = mlflow.MlflowClient(uri)
    trained_by = client.get_model_version("employment-classifier", version).run_id
    assert summary["model"] == {
        "name": "employment-classifier",
        "version": version,
        "run_id": trained_by,
    }
    assert f"training run {trained_by}" in (folder / "report.html").read_text()
    assert summary["window"]["scored_by"] == "champion"
    assert summary["rows"]["labeled"] == 0

    experiment = client.get_experiment_by_name("monitoring")
    assert experiment is not None
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.tags["model_version"] == version
    assert run.data.metrics["data_drift_detected"] == 0
    multivariate = summary["multivariate"]
    assert run.data.metrics["multivariate_detected"] == multivariate["detected"]
    assert run.data.metrics["multivariate_score"] == multivariate["score"]
    assert run.data.metrics["multivariate_threshold"] == multivariate["threshold"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "drift")}
    assert {"drift/report.html", "drift/summary.json"} <= artifacts

    workspace = Workspace(str(project / "monitoring" / "workspace"))
    (found,) = workspace.search_project("mlstack")
    assert len(workspace.list_runs(found.id)) == 1


def scored_by_another_version(project: Path, drift_data: DriftData, version: str) -> Path:
    """The reference rows as a candidate the gate rejected would leave them: its version
    named on the rows, and predictions that are not the champion's (here its opposite)."""
    folder = project / f"reference-of-v{version}"
    folder.mkdir(exist_ok=True)
    reference = drift_data.reference.sample(4000, random_state=0)
    opposite = {"0": "1", "1": "0"}
    reference = reference.assign(
        proba_0=reference["proba_1"],
        proba_1=reference["proba_0"],
        prediction=reference[PREDICTION].astype(str).map(opposite),
        model_name=drift_data.settings.model.name,
        model_version=version,
    )
    reference.to_parquet(folder / "reference.parquet")
    shutil.copy(project / IMPORTANCE_FILE, folder / "importance.json")
    return folder / "reference.parquet"


def served(project: Path, name: str, version: str) -> str:
    """The stable window as the service captures it: each row names the version that served it."""
    path = project / f"served-by-v{version}.parquet"
    stable = pd.read_parquet(project / "stable.parquet")
    stable.assign(model_name=name, model_version=version).to_parquet(path)
    return str(path)


def test_a_reference_scored_by_another_version_is_scored_again_by_the_served_one(
    champion: tuple[str, str], project: Path, drift_data: DriftData
) -> None:
    _, version = champion
    name = drift_data.settings.model.name
    reference = scored_by_another_version(project, drift_data, "999")
    current = served(project, name, version)
    run = ("run", "--current", current, "--reference", str(reference), "--json", *quiet())

    result = invoke(*run, params=params(project))

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["reference_scored_by"] == {"model_version": version, "rescored_from": "999"}
    assert summary["prediction_drift"]["detected"] is False, summary["prediction_drift"]
    _, written = latest_summary(project)
    assert written["reference_scored_by"] == summary["reference_scored_by"]

    # The same reference naming no version is used as it is: the two models' opposite
    # predictions are then a prediction drift, the false verdict the check prevents.
    pd.read_parquet(reference).drop(columns=["model_name", "model_version"]).to_parquet(reference)
    result = invoke(*run, params=params(project))
    assert result.exit_code == 0, result.output
    unnamed = json.loads(result.stdout)
    assert "reference_scored_by" not in unnamed
    assert unnamed["prediction_drift"]["detected"] is True


def test_a_window_across_a_champion_switch_is_named_and_rescored_by_one_version(
    champion: tuple[str, str], project: Path, drift_data: DriftData
) -> None:
    """Rows served by an earlier version, then by the champion (most of them): the run
    names the champion's version in ``model`` and scores the reference with that same
    version, never a join of both ("997,1") in one place and the other in another."""
    _, version = champion
    name = drift_data.settings.model.name
    reference = scored_by_another_version(project, drift_data, "996")
    stable = pd.read_parquet(project / "stable.parquet")
    earlier = len(stable) // 3  # the first third served by version 997, before the switch
    versions = ["997"] * earlier + [version] * (len(stable) - earlier)
    switched = project / "switched.parquet"
    stable.assign(model_name=name, model_version=versions).to_parquet(switched)
    run = ("run", "--current", str(switched), "--reference", str(reference), "--json")

    result = invoke(*run, *quiet(), params=params(project))

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["model"]["name"] == name and summary["model"]["version"] == version
    assert summary["reference_scored_by"] == {"model_version": version, "rescored_from": "996"}
    assert summary["prediction_drift"]["detected"] is False, "one model's predictions on both"
    _, written = latest_summary(project)
    assert written["model"] == summary["model"]


def test_a_drift_column_that_is_no_feature_exits_2_naming_the_key(tmp_path: Path) -> None:
    """Refused when the settings load, before the reference or the window is read."""
    write_params(tmp_path, columns={"NOT_A_FEATURE": {"threshold": 0.2}})
    result = invoke("run", *quiet(), params=str(tmp_path / "params.yaml"))
    assert result.exit_code == 2, result.output
    output = result.output + (result.stderr or "")
    assert "drift.columns" in output and "NOT_A_FEATURE" in output
    assert "reference set not found" not in output, "refused before any input is read"
    assert _run_folders(tmp_path) == set()


def test_a_served_version_the_registry_lacks_fails_the_run_naming_both_versions(
    champion: tuple[str, str], project: Path, drift_data: DriftData
) -> None:
    reference = scored_by_another_version(project, drift_data, "998")
    current = served(project, drift_data.settings.model.name, "77")
    before = _run_folders(project)

    result = invoke(
        *("run", "--current", current, "--reference", str(reference), *quiet()),
        params=params(project),
    )

    assert result.exit_code == 1
    assert "served by employment-classifier version 77" in result.output
    assert "scored by version 998" in result.output
    assert _run_folders(project) == before, "no verdict on a reference of another model"


def test_help_does_not_import_evidently_or_mlflow() -> None:
    code = "import sys, mlstack.cli; print(sorted({'evidently', 'mlflow'} & set(sys.modules)))"
    env = {**TELEMETRY_OFF, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_missing_reference_set_is_a_clear_error(tmp_path: Path) -> None:
    write_params(tmp_path)
    result = invoke("run", *quiet(), params=str(tmp_path / "params.yaml"))
    assert result.exit_code == 1
    assert "reference set not found" in result.output + (result.stderr or "")


def test_unreachable_pushgateway_fails_the_run_naming_it(project: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        gateway = f"http://127.0.0.1:{sock.getsockname()[1]}"
        result = invoke(
            "run", "--current", str(project / "tiny.parquet"), 
            "--pushgateway", gateway, *quiet(),
        params=params(project),
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"could not push to the Pushgateway at {gateway}" in result.output + (
        result.stderr or ""
    )


def test_a_window_that_ends_before_it_starts_is_refused(project: Path) -> None:
    since, until = "2026-03-02T00:00Z", "2026-03-01T00:00Z"
    result = invoke("run", "--since", since, "--until", until, *quiet(), params=params(project))
    assert result.exit_code == 2


def test_an_absurd_last_is_refused_naming_it(project: Path) -> None:
    result = invoke("run", "--last", "99999999d", *quiet(), params=params(project))
    assert result.exit_code == 2
    assert "99999999d" in result.output + (result.stderr or "")


def test_a_zero_row_file_is_insufficient_data(project: Path) -> None:
    empty = project / "empty.parquet"
    pd.read_parquet(project / "stable.parquet").drop(columns=PREDICTION).head(0).to_parquet(empty)
    result = invoke("run", "--current", str(empty), "--json", *quiet(), params=params(project))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["status"], summary["rows"]["current"]) == ("insufficient_data", 0)


def test_an_unknown_class_in_the_labels_is_named_with_its_column(project: Path) -> None:
    settings = settings_of(project)
    target = settings.data.target
    frame = pd.read_parquet(project / "stable.parquet")
    frame.loc[frame.index[:3], target] = "2"
    third = project / "third-class.parquet"
    frame.to_parquet(third)
    result = invoke("run", "--current", str(third), *quiet(), params=params(project))
    assert result.exit_code == 1
    assert f"{target!r}" in result.output and "'2'" in result.output


def _run_folders(root: Path) -> set[Path]:
    base = root / "reports" / "drift"
    return {p for p in base.iterdir() if p.is_dir()} if base.exists() else set()


@pytest.mark.usefixtures("no_user_uri")
def test_a_missing_mlflow_store_is_refused_before_anything_is_written(
    project: Path, tmp_path: Path
) -> None:
    write_params(tmp_path)  # a project of its own: nothing ever made a store in it
    (tmp_path / REFERENCE_FILE).parent.mkdir(parents=True)
    shutil.copy(project / REFERENCE_FILE, tmp_path / REFERENCE_FILE)
    current = str(project / "stable.parquet")
    result = invoke("run", "--current", current, "--no-workspace", params=params(tmp_path))
    assert result.exit_code == 1
    assert "no MLflow store" in result.output
    assert not (tmp_path / "mlflow.db").exists(), "an empty store was created"
    assert _run_folders(tmp_path) == set()
    assert not (tmp_path / "reports" / "drift" / "latest.json").exists()


@pytest.mark.usefixtures("no_user_uri")
def test_a_failure_at_the_mlflow_step_leaves_latest_and_state_alone(
    drift_data: DriftData, tmp_path: Path
) -> None:
    write_params(tmp_path)
    reference = tmp_path / REFERENCE_FILE
    reference.parent.mkdir(parents=True)
    drift_data.reference.sample(4000, random_state=0).to_parquet(reference)
    _capture(drift_data, tmp_path, datetime.now(UTC) - timedelta(minutes=30), 1200, seed=7)
    from mlflow import MlflowClient

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(tracking_uri=store, registry_uri=store).search_experiments()  # a real store
    # whose artifact folder is a file: the run is created, its artifacts fail to log.
    (tmp_path / "mlartifacts").write_text("a file where the artifact folder should be")

    result = invoke("run", "--no-workspace", params=str(tmp_path / "params.yaml"))

    assert result.exit_code == 1
    assert not (tmp_path / "reports" / "drift" / "latest.json").exists()
    assert not (tmp_path / "reports" / "drift" / "state.json").exists()
    result = invoke("run", "--json", *quiet(), params=str(tmp_path / "params.yaml"))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["status"], summary["rows"]["current"]) == ("ok", 1200), "same window again"


def test_importance_file_is_read_beside_the_reference(tmp_path: Path) -> None:
    """A missing or unreadable file is no importance (equal weights), never a failed run."""
    from monitoring.drift_job import JobOptions, importance_path, read_importance

    reference = tmp_path / "elsewhere" / "reference.parquet"
    path = importance_path(load_settings(), JobOptions(reference=reference))
    assert path == tmp_path / "elsewhere" / "importance.json"
    assert read_importance(path) is None
    path.parent.mkdir()
    path.write_text("not json")
    assert read_importance(path) is None
    path.write_text(json.dumps({"metric": "roc_auc", "importance": {"AGEP": 0.2, "SEX": -0.01}}))
    assert read_importance(path) == {"AGEP": 0.2, "SEX": -0.01}
