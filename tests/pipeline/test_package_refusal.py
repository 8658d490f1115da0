"""The package stage after the gate refused the first model: one clear line, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.environment import TELEMETRY_OFF
from pipeline.settings import PROJECT_ROOT

NAME = "refused-classifier"
REASON = "candidate roc_auc 0.84998 is below threshold 0.85"


def test_package_without_a_champion_names_the_gates_refusal(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["model"]["name"] = NAME
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).create_registered_model(NAME)
    (tmp_path / "reports").mkdir()
    promotion = {"decision": "rejected", "reason": REASON, "champion_version": None}
    (tmp_path / "reports" / "promotion.json").write_text(json.dumps(promotion))
    env = {**os.environ, **TELEMETRY_OFF, "MLSTACK_PARAMS": str(tmp_path / "params.yaml")}
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.package"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "the gate refused the first model" in done.stderr
    assert REASON in done.stderr and "nothing to package" in done.stderr
    assert not (tmp_path / "reports" / "package.json").exists()
