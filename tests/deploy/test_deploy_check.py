"""``mlstack deploy check``: the committed tree is deployable, line by line; a copy with one
broken file per kind of check fails on exactly those files (exit 1); a missing validator is
exit 2 naming it and the make target that installs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlstack.deploy.check import SCHEMAS, kustomizations
from tests.deploy.tools import ROOT

pytestmark = pytest.mark.deploy

# What the check reads: the deploy tree, the monitoring kustomization and its files, the CI
# and dev files, and what the orchestrator renderings come from.
COPIED = ("deploy", "monitoring", ".github", ".devcontainer")
FILES = (".gitlab-ci.yml", "Jenkinsfile", "dvc.yaml", "params.yaml", "README.md")


def deploy_check(root: Path, env: dict[str, str] | None = None) -> tuple[int, Any, str]:
    done = subprocess.run(
        [sys.executable, "-m", "mlstack.cli", "deploy", "check", "--root", str(root), "--json"],
        capture_output=True, text=True, timeout=600, env=env, cwd=ROOT,
    )  # fmt: skip
    payload = json.loads(done.stdout) if done.stdout.strip() else None
    return done.returncode, payload, done.stderr


def test_the_committed_tree_is_deployable() -> None:
    code, payload, stderr = deploy_check(ROOT)
    assert code == 0 and payload["ok"], [c for c in payload["checks"] if not c["ok"]] or stderr
    paths = {c["path"] for c in payload["checks"]}
    expected = {str(k.relative_to(ROOT)) for k in kustomizations(ROOT)}
    expected |= {path for path, _ in SCHEMAS} | {"Jenkinsfile", ".devcontainer/devcontainer.json"}
    expected |= {"deploy/airflow/dags/mlstack.py", "deploy/kubeflow/graph.json"}
    assert expected <= paths, expected - paths
    assert {"deploy/kubernetes/overlays/kserve", "deploy/argocd", "deploy/argo"} <= paths


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A copy of what the check reads with one file broken per kind of check."""
    root = tmp_path / "project"
    for name in COPIED:
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns(".venv"))
    for name in FILES:
        shutil.copy(ROOT / name, root / name)
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=root, check=True)
    edits = {
        "deploy/kubernetes/overlays/kserve/inferenceservice.yaml": ("maxReplicas:", "maxReplica:"),
        ".gitlab-ci.yml": ("  script:\n", "  scripts:\n"),
        "Jenkinsfile": ("pipeline {", "pipline {"),
        "deploy/compose/prometheus.yml": ("scrape_configs:", "scrape_config:"),
    }
    for relative, (good, bad) in edits.items():
        path = root / relative
        text = path.read_text()
        assert good in text, f"{relative} no longer has {good!r}"
        path.write_text(text.replace(good, bad, 1))
    (root / "deploy/airflow/dags/mlstack.py").write_text("# edited by hand\n")
    return root


def test_each_broken_file_fails_and_only_those(broken: Path) -> None:
    code, payload, _ = deploy_check(broken)
    assert code == 1 and payload["ok"] is False
    failed = {c["path"] for c in payload["checks"] if not c["ok"]}
    assert failed == {
        "deploy/kubernetes/overlays/kserve",
        ".gitlab-ci.yml",
        "Jenkinsfile",
        "deploy/compose/prometheus.yml",
        "deploy/airflow/dags/mlstack.py",
    }
    kserve = next(c for c in payload["checks"] if c["path"] == "deploy/kubernetes/overlays/kserve")
    assert any("maxReplica" in p for p in kserve["problems"]), kserve["problems"]


def test_a_missing_validator_is_exit_2_naming_it(tmp_path: Path) -> None:
    """promtool comes from Debian's prometheus: off PATH, the check says so and stops."""
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    code, payload, stderr = deploy_check(ROOT, env)
    assert code == 2 and payload is None
    assert "promtool is not installed" in stderr and "make system-deps" in stderr
