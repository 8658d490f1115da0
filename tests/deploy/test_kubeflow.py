"""The Kubeflow pipeline: deploy/kubeflow's own env (kfp conflicts with the project's lock)
compiles graph.json to exactly the committed pipeline.yaml, one component per stage."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.tools import DEPLOY, ROOT

pytestmark = [pytest.mark.deploy, pytest.mark.slow]

KUBEFLOW = DEPLOY / "kubeflow"


def compile_to(output: Path) -> subprocess.CompletedProcess[str]:
    uv = shutil.which("uv")
    assert uv, "uv is missing: `make install`"
    return subprocess.run(
        [uv, "run", "--project", str(KUBEFLOW), "--locked", "python",
         str(KUBEFLOW / "compile.py"), str(KUBEFLOW / "graph.json"), str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_the_committed_pipeline_is_what_kfp_compiles(tmp_path: Path) -> None:
    done = compile_to(tmp_path / "pipeline.yaml")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pipeline.yaml").read_text() == (KUBEFLOW / "pipeline.yaml").read_text()
    spec = yaml.safe_load((KUBEFLOW / "pipeline.yaml").read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {
        f"stage-{s}" for s in ("prepare", "train", "evaluate", "promote", "package")
    }
    assert tasks["stage-package"]["dependentTasks"] == ["stage-promote"]


def test_a_broken_graph_fails_to_compile(tmp_path: Path) -> None:
    (tmp_path / "graph.json").write_text('{"stages": [{"name": "x"}]}')
    done = subprocess.run(
        [shutil.which("uv") or "uv", "run", "--project", str(KUBEFLOW), "--locked", "python",
         str(KUBEFLOW / "compile.py"), str(tmp_path / "graph.json"), str(tmp_path / "out.yaml")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode != 0
    assert not (tmp_path / "out.yaml").exists()
