"""A bad params file ends every command and every stage the same way: exit 2 and one line
on stderr naming the key, never a traceback. Each runs as a real process, as a user or
DVC starts it, with ``MLSTACK_PARAMS`` pointing at the bad file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.environment import TELEMETRY_OFF
from tests.imports import ROOT

MLSTACK = [sys.executable, "-m", "mlstack.cli"]
COMMANDS = {
    **{stage: [sys.executable, "-m", f"pipeline.{stage}"] for stage in
       ("prepare", "train", "evaluate", "promote", "package")},
    "drift run": [*MLSTACK, "drift", "run", "--no-mlflow"],
    "drift schedule": [*MLSTACK, "drift", "schedule", "--every", "1h", "--max-runs", "1"],
    "model history": [*MLSTACK, "model", "history"],
    "model rollback": [*MLSTACK, "model", "rollback"],
    "replay": [*MLSTACK, "replay", "--scenario", "production_2016"],
    "retrain": [*MLSTACK, "retrain", "--json"],
    "demo": [sys.executable, "-m", "mlstack.demo"],
}  # fmt: skip


@pytest.fixture(scope="module")
def bad_params(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["drift"]["drift_share"] = "most"
    path = tmp_path_factory.mktemp("bad") / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("name", COMMANDS)
def test_bad_params_exit_2_with_one_line_naming_the_key(name: str, bad_params: Path) -> None:
    env = {**os.environ, **TELEMETRY_OFF, "MLSTACK_PARAMS": str(bad_params)}
    done = subprocess.run(
        COMMANDS[name],
        cwd=bad_params.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "drift.drift_share" in lines[0] and "'most'" in lines[0]
    assert "Traceback" not in done.stderr
