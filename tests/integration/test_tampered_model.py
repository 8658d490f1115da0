"""A real ``bentoml serve`` whose model store holds a tampered model never becomes ready:
the model folder's MLmodel asks for cloudpickle and its pickle would run a command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from serving_harness import refused_start

from tests.tampering import MARKER_PICKLE

pytestmark = pytest.mark.integration


def tamper(store: Path, marker: Path) -> None:
    """Every model in ``store``: MLmodel says cloudpickle, the file is the marker pickle."""
    for mlmodel in store.glob("*/*/mlflow_model/MLmodel"):
        folder = mlmodel.parent
        subprocess.run(
            [sys.executable, "-c", MARKER_PICKLE, str(folder / "model.pkl"), str(marker)],
            check=True,
        )
        meta = yaml.safe_load(mlmodel.read_text())
        meta["flavors"]["sklearn"].update(
            {"serialization_format": "cloudpickle", "pickled_model": "model.pkl"}
        )
        meta["flavors"]["python_function"]["model_path"] = "model.pkl"
        mlmodel.write_text(yaml.safe_dump(meta))


def test_a_server_whose_store_holds_a_tampered_model_never_gets_ready(
    packaged: str, base_env: dict[str, str], tmp_path: Path
) -> None:
    home = tmp_path / "tampered-home"
    shutil.copytree(Path(base_env["BENTOML_HOME"]) / "models", home / "models", symlinks=False)
    marker = tmp_path / "pwned"
    tamper(home / "models", marker)

    # The workers refuse the model and never get ready: watched until the refusal is
    # logged, not for a fixed minute.
    log = refused_start(tmp_path / "server", {**base_env, "BENTOML_HOME": str(home)}, "UnsafeModel")

    assert "serialised as 'cloudpickle'" in log
    assert not marker.exists(), "the tampered pickle ran"
