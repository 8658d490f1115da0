"""What the deploy tests share: the repository's paths, the dev environment's tools,
rendered kustomizations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from mlstack.deploy.check import K8S_VERSION, kustomizations

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
KUSTOMIZATIONS = kustomizations(ROOT)
COMPOSE = DEPLOY / "compose" / "compose.yaml"
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def tool(name: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    binary = BIN / name
    assert binary.exists(), f"{name} is missing from the dev environment: `make install`"
    return subprocess.run(
        [str(binary), *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def render(folder: Path) -> list[dict[str, Any]]:
    done = tool("kubectl", "kustomize", str(folder))
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def validate(documents: list[dict[str, Any]], folder: Path) -> subprocess.CompletedProcess[str]:
    rendered = folder / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(documents))
    return tool("kubernetes-validate", "--strict", "-k", K8S_VERSION, str(rendered))


def by_kind(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]
