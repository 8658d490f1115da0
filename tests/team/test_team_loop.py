"""The loop on the team stack: tracking server on PostgreSQL + S3, DVC, capture and drift
history on S3, all through environment variables (conftest.py, team_servers.py).

The S3 server is moto (``moto_server``), standing in for MinIO/S3, which cannot be
installed here; it speaks the same HTTP API to the same clients (botocore, s3fs, DVC).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from testbeds.team_servers import (
    BUCKET,
    CAPTURE,
    WORKSPACE,
    Served,
    TeamStack,
    json_out,
    mlflow_container,
)
from tests.conftest import Project

pytestmark = pytest.mark.team

# What `dvc repro` leaves in the DVC cache (everything else is in git or uncached).
CACHED_OUTS = [
    "data/prepared/train.parquet",
    "data/prepared/test.parquet",
    "data/reference/reference.parquet",
    "reports/train.json",
    "reports/package.json",
]


def client_env(monkeypatch: pytest.MonkeyPatch, stack: TeamStack) -> None:
    """This process as a team member's shell: the same variables, nothing else (fsspec's
    cached S3 filesystems are dropped before each test: tests/conftest.py)."""
    for key, value in stack.client_env.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(autouse=True)
def as_the_pipeline(monkeypatch: pytest.MonkeyPatch, team_stack: TeamStack) -> None:
    """In-process MLflow clients here sign in as the pipeline (the server runs basic auth)."""
    for key, value in team_stack.identity("pipeline").items():
        monkeypatch.setenv(key, value)


def mlflow_client(stack: TeamStack) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=stack.tracking_uri, registry_uri=stack.tracking_uri)


def test_tracking_server_answers_only_the_hosts_it_was_told(team_stack: TeamStack) -> None:
    """--allowed-hosts matches host and port; /health skips the check (the pitfall)."""
    api = f"{team_stack.tracking_uri}/api/2.0/mlflow/experiments/search?max_results=1"
    health = f"{team_stack.tracking_uri}/health"
    in_cluster = {"Host": "mlflow.mlstack.svc:5000"}  # the manifest's readiness probe
    stranger = {"Host": "mlflow.elsewhere.example:5000"}
    auth = team_stack.basic_auth("service")
    assert httpx.get(api, headers=in_cluster, auth=auth, timeout=30).status_code == 200
    assert httpx.get(api, headers=stranger, auth=auth, timeout=30).status_code == 403
    assert httpx.get(health, headers=stranger, timeout=30).status_code == 200
    # Before signing in, a known Host is 401 and a stranger 403: the host check comes first,
    # which is what the manifest's readiness probe tells apart without a credential.
    assert httpx.get(api, headers=in_cluster, timeout=30).status_code == 401
    assert httpx.get(api, headers=stranger, timeout=30).status_code == 403


def manifest_probe() -> str:
    """The tracking server Deployment's readiness probe, the Python it runs."""
    return str(mlflow_container()["readinessProbe"]["exec"]["command"][-1])


def test_the_manifests_readiness_probe_passes_on_the_real_server(team_stack: TeamStack) -> None:
    """Run as it runs in the pod, against this server: ready without any credential; a Host
    that --allowed-hosts lacks (403) is not ready."""
    probe = manifest_probe().replace("127.0.0.1:5000", f"127.0.0.1:{team_stack.mlflow_port}")
    ready = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60)
    assert ready.returncode == 0, ready.stderr
    stranger = probe.replace("mlflow.mlstack.svc:5000", "mlflow.elsewhere.example:5000")
    assert subprocess.run([sys.executable, "-c", stranger], timeout=60).returncode != 0


def test_repro_registers_the_champion_in_postgres_and_the_model_in_s3(
    team_project: Project, team_stack: TeamStack
) -> None:
    import psycopg

    name = team_project.settings.model.name
    champion = mlflow_client(team_stack).get_model_version_by_alias(name, "champion")
    with psycopg.connect(team_stack.postgres.dsn) as connection:
        aliases = connection.execute(
            "select alias, version from registered_model_aliases where name = %s", (name,)
        ).fetchall()
    assert ("champion", int(champion.version)) in aliases
    models = [key for key in team_stack.keys("mlartifacts/") if key.endswith("/MLmodel")]
    assert models, "no model artifact reached S3"
    package = json.loads((team_project.root / "reports" / "package.json").read_text())
    assert package, "the package stage wrote nothing"
    assert not (team_project.root / "mlflow.db").exists(), "the embedded store was used"


def digests(root: Path) -> dict[str, str]:
    return {out: hashlib.sha256((root / out).read_bytes()).hexdigest() for out in CACHED_OUTS}


def test_dvc_push_then_pull_into_an_empty_cache(
    team_project: Project, team_stack: TeamStack
) -> None:
    root = team_project.root
    before = digests(root)
    team_project.dvc("push")
    assert team_stack.keys("dvc/"), "dvc push wrote nothing to the s3 remote"

    shutil.rmtree(root / ".dvc" / "cache")
    for out in CACHED_OUTS:
        (root / out).unlink()
    team_project.dvc("pull")

    assert digests(root) == before
    status = team_project.dvc("status", "--json")
    assert json.loads(status.stdout) == {}


def test_dvc_push_to_a_missing_bucket_fails(team_project: Project) -> None:
    team_project.dvc("remote", "add", "--force", "nowhere", "s3://no-such-bucket/dvc")
    done = team_project.dvc("push", "--remote", "nowhere", check=False)
    assert done.returncode != 0


def test_served_rows_and_labels_reach_the_s3_capture(
    served: Served, team_project: Project, team_stack: TeamStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitoring.capture import read_window

    replay = served.replay
    assert served.exit_code == 0, served.log.read_text()[-3000:]
    assert replay["sent"] == replay["ok"] > 0 and replay["errors"] == 0
    assert replay["labels_accepted"] == replay["labels_sent"] > 0  # replay bore the token
    assert served.tokenless_feedback_status == 401
    keys = team_stack.keys("capture/")
    assert any(k.startswith("capture/predictions/date=") for k in keys)
    assert any(k.startswith("capture/labels/date=") for k in keys)
    assert not [k for k in keys if k.endswith(".tmp")], "a temporary file was left behind"

    client_env(monkeypatch, team_stack)
    window = read_window(CAPTURE, team_project.settings)
    assert len(window) == replay["sent"]
    assert int(window[team_project.settings.data.target].notna().sum()) == replay["labels_sent"]


def test_drift_run_judges_the_s3_capture_and_logs_to_the_server(
    drift_run: dict[str, Any], served: Served, team_project: Project, team_stack: TeamStack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    assert drift_run["status"] == "ok"
    assert drift_run["rows"]["current"] == served.replay["sent"]
    assert drift_run["rows"]["labeled"] == served.replay["labels_accepted"]

    client = mlflow_client(team_stack)
    experiment = client.get_experiment_by_name("monitoring")
    runs = client.search_runs([experiment.experiment_id], "tags.`mlstack.stage` = 'drift'")
    assert len(runs) == 1 and runs[0].data.tags["status"] == "ok"
    logged = [item.path for item in client.list_artifacts(runs[0].info.run_id, "drift")]
    assert "drift/summary.json" in logged
    assert any(k.endswith("/drift/summary.json") for k in team_stack.keys("mlartifacts/"))

    # The Evidently workspace on S3: what `evidently ui --workspace s3://...` shows.
    client_env(monkeypatch, team_stack)
    from evidently.ui.workspace import Workspace

    projects = Workspace(WORKSPACE).search_project(team_project.settings.drift.project)
    assert len(projects) == 1
    assert any("/snapshots/" in key for key in team_stack.keys("workspace/"))


def test_drift_run_with_the_tracking_server_down_fails_and_keeps_its_window(
    drift_run: dict[str, Any], team_project: Project
) -> None:
    state = team_project.root / team_project.settings.drift.state
    before = state.read_text()
    env = dict(team_project.env)
    team_project.env.update(
        MLFLOW_TRACKING_URI="http://127.0.0.1:9",  # discard port: nothing listens
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
    )
    try:
        done = team_project.run("mlstack", "drift", "run", "--json", check=False)
    finally:
        team_project.env.clear()
        team_project.env.update(env)
    assert done.returncode == 1
    assert state.read_text() == before


def test_capture_to_a_missing_bucket_keeps_the_rows_and_makes_no_bucket(
    team_stack: TeamStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A mistyped s3:// path: rows stay in their local segments (the write-ahead log keeps
    them for a retry, nothing is dropped), the writer reports itself unhealthy, and no
    bucket is created. A good path gets the rows."""
    from datetime import UTC, datetime

    from monitoring.capture import LABELS, CaptureWriter, read_kind

    client_env(monkeypatch, team_stack)
    dropped: list[int] = []
    rows = [{"request_id": f"r{i}", "timestamp": datetime.now(UTC), "label": "1"} for i in range(3)]
    lost = CaptureWriter(
        "s3://no-such-bucket/capture",
        segments=tmp_path / "lost-segments",
        on_dropped=lambda _, n: dropped.append(n),
    )
    lost.add(LABELS, rows)
    lost.flush()
    assert dropped == [] and lost.pending == 3 and not lost.healthy
    buckets = team_stack.s3().list_buckets()["Buckets"]  # type: ignore[attr-defined]
    assert "no-such-bucket" not in {b["Name"] for b in buckets}, "a mistyped path made a bucket"

    kept = CaptureWriter(f"s3://{BUCKET}/capture-writer-test", segments=tmp_path / "kept-segments")
    kept.add(LABELS, rows)
    kept.flush()
    assert sorted(read_kind(f"s3://{BUCKET}/capture-writer-test", LABELS)["request_id"]) == [
        "r0",
        "r1",
        "r2",
    ]


def test_rollback_moves_the_champion_on_the_server(
    drift_run: dict[str, Any], team_project: Project, team_stack: TeamStack
) -> None:
    """After the drift run (this moves the champion). A second champion is set up through
    the registry module (a retrain would cost minutes); then the real ``mlstack model
    rollback`` moves the alias back and imports the model from the server (its artifacts
    from S3) into the BentoML store."""
    from pipeline.registry import move_champion

    name = team_project.settings.model.name
    client = mlflow_client(team_stack)
    first = client.get_model_version_by_alias(name, "champion")
    # A version of the same logged model: the server wants its id (the source's last part;
    # the ModelVersion it returns carries none).
    model_id = first.source.removeprefix("models:/")
    second = client.create_model_version(name, first.source, run_id=first.run_id, model_id=model_id)
    move_champion(client, name, "champion", str(second.version), "team test: a second champion")

    refused = team_project.run("mlstack", "model", "rollback", "--to", "999", check=False)
    assert refused.returncode == 2
    assert client.get_model_version_by_alias(name, "champion").version == second.version

    team_project.run("mlstack", "model", "rollback")
    assert client.get_model_version_by_alias(name, "champion").version == first.version
    history = json_out(team_project.run("mlstack", "model", "history", "--json"))
    assert history["champion"] == first.version


def test_service_image_context_pins_the_locked_versions(
    team_project: Project, tmp_path: Path
) -> None:
    """deploy/docker/build-service-image.sh on the Bento the package stage built (no
    Docker here: only the build context is laid out and checked)."""
    import tomllib

    from tests.conftest import ROOT

    context = tmp_path / "context"
    env = {**team_project.env, "UV": str(Path(sys.executable).parent / "uv")}
    script = ROOT / "deploy" / "docker" / "build-service-image.sh"
    done = subprocess.run(
        [str(script), "--context", str(context)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    dockerfile = (context / "env" / "docker" / "Dockerfile").read_text()
    assert "requirements.txt" in dockerfile
    assert dockerfile.rstrip().endswith("ENV BENTOML_HOST=0.0.0.0")
    lines = (context / "env" / "python" / "requirements.txt").read_text().splitlines()
    pins = dict(ln.split(";")[0].strip().split("==") for ln in lines if "==" in ln)
    unpinned = [ln for ln in lines if ln and not ln.startswith(("#", " ")) and "==" not in ln]
    assert not unpinned
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {p["name"]: p["version"] for p in lock["package"]}
    for package in ("bentoml", "scikit-learn", "mlflow", "s3fs", "pandas"):
        assert pins[package] == locked[package], package


def test_service_image_script_refuses_a_missing_bento(
    team_project: Project, tmp_path: Path
) -> None:
    from tests.conftest import ROOT

    env = {**team_project.env, "BENTO": "no-such-bento:latest"}
    env["UV"] = str(Path(sys.executable).parent / "uv")
    script = ROOT / "deploy" / "docker" / "build-service-image.sh"
    done = subprocess.run(
        [str(script), "--context", str(tmp_path / "context")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0
    assert not (tmp_path / "context" / "env").exists()
