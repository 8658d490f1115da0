"""Real servers for the serving tests: the pipeline's champion, a BentoML store, a server.

The champion comes from ``pipeline_project`` (tests/conftest.py): a real
``dvc repro promote`` on a sample of 2015 in a temporary project with its own MLflow
store. The package step runs in that project too, into a temporary ``BENTOML_HOME``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from serving_harness import Champion, Server, run_in_project, start_server

from pipeline.environment import TELEMETRY_OFF
from tests.conftest import Project


@pytest.fixture(scope="session")
def base_env(pipeline_project: Project, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The project's environment (its MLflow store, its root) with a BentoML store of our own."""
    env = {**os.environ, **pipeline_project.env, **TELEMETRY_OFF}
    env["BENTOML_HOME"] = str(tmp_path_factory.mktemp("bentoml"))
    env.pop("MLSTACK_PARAMS", None)
    return env


@pytest.fixture(scope="session")
def champion(pipeline_project: Project) -> Champion:
    """The model version the pipeline promoted, as the registry reports it."""
    from mlflow import MlflowClient

    settings = pipeline_project.settings
    uri = pipeline_project.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = client.get_model_version_by_alias(settings.model.name, settings.promote.alias)
    return Champion(uri, found.name, str(found.version), str(found.run_id))


@pytest.fixture(scope="session")
def packaged(champion: Champion, pipeline_project: Project, base_env: dict[str, str]) -> str:
    """The champion imported into the temporary BentoML store (the package stage's first half)."""
    return run_in_project(pipeline_project.root, base_env, "-m", "pipeline.package", "--model-only")


@pytest.fixture(scope="session")
def server(
    packaged: str, base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A real ``bentoml serve`` from the repo root: two workers, capture in a temp folder.

    Shared by the whole session (starting one costs tens of seconds on two cores), so
    tests that count read deltas, never absolute values.
    """
    running = start_server(tmp_path_factory.mktemp("server"), base_env, serving={"workers": 2})
    yield running
    running.stop()
