"""Real servers for the serving tests: a registered champion, a BentoML store, a server.

Until the pipeline's own session fixture lands in tests/conftest.py, the champion here
is a small model trained with the project's factory on 5,000 rows of 2015, logged with
skops into a temporary SQLite MLflow store and given the ``champion`` alias.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml

from pipeline.settings import PROJECT_ROOT, Settings, load_settings
from pipeline.tracking import TELEMETRY_OFF

TRAIN_ROWS = 5_000


@dataclass(frozen=True)
class Champion:
    tracking_uri: str
    name: str
    version: str
    run_id: str


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    capture: Path
    log: Path
    settings: Settings

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as systemd or Kubernetes would send, then wait for a clean exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return int(self.process.returncode)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
            input_example=data[settings.data.features.all].head(2),
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


def write_params(folder: Path, **sections: dict[str, Any]) -> Path:
    """The project's params.yaml with some sections merged over, in ``folder``."""
    raw = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def start_server(
    folder: Path,
    env: dict[str, str],
    target: str = "serving.service:Classifier",
    **sections: dict[str, Any],
) -> Server:
    capture = folder / "capture"
    sections.setdefault("capture", {})
    sections["capture"] = {"path": str(capture), "flush_seconds": 1.0, **sections["capture"]}
    sections.setdefault("serving", {})
    sections["serving"] = {"workers": 2, **sections["serving"]}
    params = write_params(folder, **sections)
    port = free_port()
    log = folder / "server.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=PROJECT_ROOT,
        env={**env, "MLSTACK_PARAMS": str(params)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"bentoml serve exited {process.returncode}:\n{log.read_text()[-4000:]}"
            )
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        os.killpg(process.pid, signal.SIGKILL)
        raise RuntimeError(f"bentoml serve not ready in 90 s:\n{log.read_text()[-4000:]}")
    return Server(url, process, capture, log, load_settings(params))


@pytest.fixture(scope="module")
def server(
    packaged: str, base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A real ``bentoml serve`` from the repo root: two workers, capture in a temp folder."""
    running = start_server(tmp_path_factory.mktemp("server"), base_env)
    yield running
    running.stop()
