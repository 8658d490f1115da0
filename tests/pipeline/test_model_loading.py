"""``load_model`` reads from the store it is given, and only from it.

MLflow resolves ``models:/`` URIs through its process-wide registry (the working
folder's ``mlflow.db`` when nothing is set), whatever registry it is handed: loading then
failed in a fresh clone and, worse, silently read another store's model of the same name
where one existed. Run in a fresh process from an empty folder, as a stage or the drift
job would be."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Project

pytestmark = pytest.mark.slow

LOAD = """
import json, sys
from pipeline.tracking import load_model
uri, store = sys.argv[1:]
model = load_model(uri, store)
print(json.dumps([str(c) for c in model.classes_]))
"""


def test_a_registered_model_loads_from_its_store_not_the_working_folder(
    pipeline_project: Project, tmp_path: Path
) -> None:
    settings = pipeline_project.settings
    env = {k: v for k, v in pipeline_project.env.items() if not k.startswith("MLFLOW_TRACKING")}
    for uri in (
        f"models:/{settings.model.name}@{settings.promote.alias}",
        f"models:/{settings.model.name}/1",
    ):
        done = subprocess.run(
            [sys.executable, "-c", LOAD, uri, pipeline_project.tracking_uri],
            cwd=tmp_path,
            env={**env, "PATH": os.environ["PATH"]},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout.strip().splitlines()[-1]) == settings.data.classes
    assert not (tmp_path / "mlflow.db").exists(), "no store may appear in the working folder"
