"""Real servers for the serving tests: a registered champion, a BentoML store, a server.

Until the pipeline's own session fixture lands in tests/conftest.py, the champion here
is a small model trained with the project's factory on 5,000 rows of 2015, logged with
skops into a temporary SQLite MLflow store and given the ``champion`` alias.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from serving_harness import Champion, Server, start_server

from pipeline.settings import PROJECT_ROOT, Settings, load_settings
from pipeline.tracking import TELEMETRY_OFF

TRAIN_ROWS = 5_000


@pytest.fixture(scope="session")
def project_settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def serving_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serving")


@pytest.fixture(scope="session")
def base_env(serving_home: Path) -> dict[str, str]:
    env = {**os.environ, **TELEMETRY_OFF}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{serving_home / 'mlflow.db'}"
    env["BENTOML_HOME"] = str(serving_home / "bentoml")
    env.pop("MLSTACK_PARAMS", None)
    return env


@pytest.fixture(scope="session")
def champion(project_settings: Settings, base_env: dict[str, str], serving_home: Path) -> Champion:
    """A small model, registered and aliased ``champion`` in a temporary MLflow store."""
    import mlflow
    import mlflow.sklearn

    from pipeline.model import build_model
    from pipeline.schema import validate
    from pipeline.tracking import SKOPS_TRUSTED_TYPES

    settings = project_settings
    raw = pd.read_parquet(settings.path(settings.data.path)).sample(
        TRAIN_ROWS, random_state=settings.data.seed
    )
    data = validate(raw, settings.data)
    train = settings.train.model_copy(
        update={
            "hist_gradient_boosting": settings.train.hist_gradient_boosting.model_copy(
                update={"max_iter": 50}
            )
        }
    )
    model = build_model(settings.data.features, train, settings.data.seed)
    model.fit(data[settings.data.features.all], data[settings.data.target])
    uri = base_env["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.create_experiment(
        "serving-tests", artifact_location=(serving_home / "mlartifacts").as_uri()
    )
    with mlflow.start_run(experiment_id=experiment) as run:
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            registered_model_name=settings.model.name,
            pip_requirements=["scikit-learn", "skops"],  # skip inferring the environment
        )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(settings.model.name, settings.promote.alias, version)
    return Champion(uri, settings.model.name, version, run.info.run_id)


@pytest.fixture(scope="session")
def packaged(champion: Champion, base_env: dict[str, str]) -> str:
    """The champion imported into a temporary BentoML store (what the package stage does)."""
    script = (
        "from pipeline.package import find_champion, import_champion\n"
        "from pipeline.settings import load_settings\n"
        "from pipeline.tracking import configure\n"
        "s = load_settings(); configure(s)\n"
        "print(import_champion(s, find_champion(s)).tag)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=base_env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def server(
    packaged: str, base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A real ``bentoml serve`` from the repo root: two workers, capture in a temp folder."""
    running = start_server(tmp_path_factory.mktemp("server"), base_env)
    yield running
    running.stop()
