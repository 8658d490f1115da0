"""Registries of our own for the tests that move the champion alias.

The session's pipeline project is shared by every serving test, and its servers follow
its alias: a test that moved it would change what the others are answered with. These
helpers copy its MLflow store (the SQLite file; the artifacts it names stay where they
are, read only) and add versions to the copy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import Project
from tests.tampering import MARKER_PICKLE


def copy_registry(project: Project, folder: Path) -> str:
    """A tracking URI on a copy of the project's store: same versions, same champion."""
    folder.mkdir(parents=True, exist_ok=True)
    source = Path(project.tracking_uri.removeprefix("sqlite:///"))
    shutil.copy(source, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


def _client(uri: str):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def champion_version(uri: str, name: str) -> str:
    return str(_client(uri).get_model_version_by_alias(name, "champion").version)


def add_version(uri: str, name: str, like: str | None = None) -> str:
    """A new version holding the same model as version ``like`` (default: the champion).

    Registered from the model's storage location, not its ``models:/`` URI: MLflow resolves
    that one in the process-wide store whatever client is asked.
    """
    client = _client(uri)
    found = (
        client.get_model_version(name, like)
        if like is not None
        else client.get_model_version_by_alias(name, "champion")
    )
    location = client.get_model_version_download_uri(name, str(found.version))
    made = client.create_model_version(name, location, run_id=found.run_id)
    return str(made.version)


def add_tampered_version(uri: str, name: str, folder: Path, marker: Path) -> str:
    """A version whose model folder asks for cloudpickle and holds a pickle that would
    ``touch marker``: ``pipeline.tracking.load_model`` must refuse it unread."""
    folder.mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-c", MARKER_PICKLE, str(folder / "model.pkl"), str(marker)], check=True
    )
    mlmodel = {
        "flavors": {
            "sklearn": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"},
            "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"},
        }
    }
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    made = _client(uri).create_model_version(name, folder.resolve().as_uri())
    return str(made.version)
