"""The team stack, started once per session: real servers on 127.0.0.1 (team_servers.py)
and a project that ran the whole loop against them.

``team_project`` is a temporary project (tests/conftest.py's ``make_project``: a git+DVC
repo on 8,000 rows of 2015) whose only difference from a laptop's is the environment:
``MLFLOW_TRACKING_URI`` at the tracking server, ``AWS_ENDPOINT_URL`` and credentials for
S3, ``MLSTACK_CAPTURE_PATH=s3://...``, a DVC remote on S3, and the pipeline's MLflow
identity (the server runs MLflow's basic auth). Its ``dvc repro`` registers the champion in
PostgreSQL and stores the model in S3; the service and the drift run use their own
identities. ``served`` serves the Bento the
package stage built, capturing to S3, replays a scenario and stops the server with
SIGTERM; ``drift_run`` judges that capture. Each step runs once and the tests assert on
what it left.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pipeline.environment import TELEMETRY_OFF
from serving import launcher
from testbeds.team_servers import (
    CAPTURE,
    DVC_REMOTE,
    FEEDBACK_TOKEN,
    FEEDBACK_TOKEN_ENV,
    REPLAY_ROWS,
    WORKSPACE,
    Served,
    TeamStack,
    free_port,
    json_out,
    start_team_stack,
)
from tests.conftest import Project, employment_sample, make_project, wait_settled


@pytest.fixture(scope="session")
def team_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamStack]:
    env = {**os.environ, **TELEMETRY_OFF}
    env.pop("MLFLOW_TRACKING_URI", None)
    stack = start_team_stack(tmp_path_factory.mktemp("team-servers"), env)
    yield stack
    stack.stop()


def on_s3(params: dict[str, Any]) -> None:
    """The project's params.yaml with the capture log and the drift history on S3."""
    params["capture"]["path"] = CAPTURE
    params["drift"]["workspace"] = WORKSPACE


@pytest.fixture(scope="session")
def team_project(team_stack: TeamStack, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project after ``dvc repro`` (every stage, package included) against the servers."""
    project = make_project(tmp_path_factory.mktemp("team-project"), employment_sample(), on_s3)
    project.env.update(team_stack.client_env)
    project.env["MLSTACK_PARAMS"] = str(project.root / "params.yaml")  # for `mlstack`
    project.env["MLSTACK_CAPTURE_PATH"] = CAPTURE
    project.env["BENTOML_HOME"] = str(tmp_path_factory.mktemp("team-bentoml"))
    project.dvc("remote", "add", "--default", "s3", DVC_REMOTE)
    project.dvc("repro")
    return project


@pytest.fixture(scope="session")
def served(
    team_project: Project, team_stack: TeamStack, tmp_path_factory: pytest.TempPathFactory
) -> Served:
    """The Bento served as its container runs it, a scenario replayed, then SIGTERM.

    No ``--host``/``--port``: like the image, the server takes them from BENTOML_HOST and
    BENTOML_PORT, which override the serving.host/port the Bento baked from params.yaml.
    """
    folder = tmp_path_factory.mktemp("team-served")
    port = free_port()
    team_project.env[FEEDBACK_TOKEN_ENV] = FEEDBACK_TOKEN  # replay sends it too
    env = {
        **team_project.env,
        **team_stack.identity("service"),  # it reads the registry, nothing else
        "BENTOML_HOST": "127.0.0.1",
        "BENTOML_PORT": str(port),
        "MLSTACK_WORKERS": "1",
    }
    env.pop("MLSTACK_PARAMS", None)
    log = folder / "server.log"
    command = [sys.executable, "-m", "bentoml", "serve", "mlstack:latest"]
    process = launcher.start(command, log, cwd=folder, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        launcher.wait_ready(url, process, log, seconds=180)
        replay = team_project.run(
            "mlstack",
            "replay",
            "--scenario",
            "production_2016",
            "--limit",
            REPLAY_ROWS,
            "--url",
            url,
            "--json",
        )
        tokenless = httpx.post(
            f"{url}/feedback", json={"labels": [{"request_id": "r", "label": "1"}]}, timeout=30
        )
    finally:
        code = launcher.stop(process, timeout=60)
    wait_settled(team_project.settings)  # the default window of drift_run holds every row
    return Served(json_out(replay), code, log, tokenless.status_code)


@pytest.fixture(scope="session")
def drift_run(served: Served, team_project: Project, team_stack: TeamStack) -> dict[str, Any]:
    """``mlstack drift run --json`` on what the server captured to S3, as the drift job's
    own identity."""
    job = Project(team_project.root, {**team_project.env, **team_stack.identity("drift")})
    return json_out(job.run("mlstack", "drift", "run", "--json"))
