"""Who may choose what is served, against the real tracking server with MLflow's basic auth
on (team_servers.py): no credentials or a wrong password is 401; the service's and the drift
job's identities read the registry but cannot move ``@champion`` or delete a version (403);
the pipeline's can. The loop itself ran with each identity (conftest.py: ``dvc repro`` as
the pipeline, ``bentoml serve`` as the service, ``mlstack drift run`` as the drift job)."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest

from pipeline import environment
from testbeds.team_servers import TeamStack, admin_env, create_users, json_out
from tests.conftest import Project

pytestmark = pytest.mark.team

MODEL = "employment-classifier"
API = "/api/2.0/mlflow"


def call(
    stack: TeamStack, method: str, path: str, identity: str | None, **body: Any
) -> httpx.Response:
    auth = stack.basic_auth(identity) if identity else None
    url = f"{stack.tracking_uri}{API}{path}"
    if method == "GET":
        return httpx.get(url, params=body, auth=auth, timeout=30)
    return httpx.request(method, url, json=body, auth=auth, timeout=30)


def champion_version(stack: TeamStack) -> str:
    found = call(stack, "GET", "/registered-models/alias", "service", name=MODEL, alias="champion")
    assert found.status_code == 200, found.text
    return str(found.json()["model_version"]["version"])


def test_no_credentials_or_a_wrong_password_is_401(
    team_project: Project, team_stack: TeamStack
) -> None:
    assert call(team_stack, "GET", "/registered-models/search", None).status_code == 401
    wrong = httpx.get(
        f"{team_stack.tracking_uri}{API}/registered-models/search",
        auth=("mlstack-pipeline", "not-the-password"), timeout=30,
    )  # fmt: skip
    assert wrong.status_code == 401


@pytest.mark.parametrize("identity", ["service", "drift"])
def test_the_service_and_the_drift_job_cannot_choose_what_is_served(
    team_project: Project, team_stack: TeamStack, identity: str
) -> None:
    version = champion_version(team_stack)
    moved = call(
        team_stack, "POST", "/registered-models/alias", identity,
        name=MODEL, alias="champion", version=version,
    )  # fmt: skip
    assert moved.status_code == 403, moved.text
    deleted = call(
        team_stack, "DELETE", "/model-versions/delete", identity, name=MODEL, version=version
    )
    assert deleted.status_code == 403, deleted.text
    registered = call(
        team_stack, "POST", "/registered-models/create", identity, name=f"{MODEL}-{identity}"
    )
    version_created = call(
        team_stack, "POST", "/model-versions/create", identity,
        name=MODEL, source="s3://elsewhere/model", run_id="",
    )  # fmt: skip
    assert version_created.status_code == 403, version_created.text
    assert champion_version(team_stack) == version
    # What basic auth cannot stop: a model of its own (only MLflow workspaces can).
    assert registered.status_code == 200


def test_the_pipeline_moves_aliases(team_project: Project, team_stack: TeamStack) -> None:
    version = champion_version(team_stack)
    body = {"name": MODEL, "alias": "auth-check", "version": version}
    assert (
        call(team_stack, "POST", "/registered-models/alias", "pipeline", **body).status_code == 200
    )
    gone = call(
        team_stack, "DELETE", "/registered-models/alias", "pipeline", name=MODEL, alias="auth-check"
    )
    assert gone.status_code == 200, gone.text


def test_create_users_sets_the_password_again_and_refuses_without_one(
    team_stack: TeamStack,
) -> None:
    env = admin_env(team_stack, dict(os.environ))
    again = create_users(env)
    assert again.returncode == 0, again.stderr
    assert set(json_out(again)["users"].values()) == {"password set"}
    missing = create_users({k: v for k, v in env.items() if k != environment.DRIFT_PASSWORD})
    assert missing.returncode == 2 and environment.DRIFT_PASSWORD in missing.stderr
    as_service = create_users({**env, **team_stack.identity("service")})
    assert as_service.returncode != 0, "a non-admin made users"
    assert call(team_stack, "GET", "/registered-models/search", "drift").status_code == 200
