"""The devcontainer: .devcontainer/devcontainer.json checked structurally.

check-jsonschema vendors no devcontainer schema (its --builtin-schema list has none) and
none installs from the registries here, so the file is checked for what the project needs:
strict JSON, an image or build, uv, postCreateCommand `make install`, the ports of
`bentoml serve` (params.yaml serving.port), `mlflow ui` and `evidently ui` (the README's
--port) forwarded, and the VS Code Python and Jupyter extensions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import ROOT

pytestmark = pytest.mark.deploy

DEVCONTAINER = ROOT / ".devcontainer" / "devcontainer.json"
EXTENSIONS = {"ms-python.python", "ms-toolsai.jupyter"}


def expected_ports() -> set[int]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    readme = (ROOT / "README.md").read_text()
    ports = {int(params["serving"]["port"])}
    for command in ("mlflow ui", "evidently ui"):
        found = re.search(re.escape(command) + r" [^\n]*--port (\d+)", readme)
        assert found, f"README gives no --port for {command}"
        ports.add(int(found.group(1)))
    return ports


def problems(path: Path) -> list[str]:
    try:
        spec: Any = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        return [f"{path}: not JSON: {error}"]
    if not isinstance(spec, dict):
        return [f"{path}: not an object"]
    found = []
    if not ({"image", "build", "dockerComposeFile"} & spec.keys()):
        found.append("no image, build or dockerComposeFile")
    if "python" not in str(spec.get("image", "")):
        found.append("image is not a Python image")
    if not any("uv" in feature for feature in spec.get("features", {})):
        found.append("no uv feature")
    if spec.get("postCreateCommand") != "make install":
        found.append("postCreateCommand is not `make install`")
    missing = expected_ports() - set(spec.get("forwardPorts", []))
    if missing:
        found.append(f"ports not forwarded: {sorted(missing)}")
    vscode = spec.get("customizations", {}).get("vscode", {})
    lacking = EXTENSIONS - set(vscode.get("extensions", []))
    if lacking:
        found.append(f"extensions missing: {sorted(lacking)}")
    return [f"{path}: {problem}" for problem in found]


def test_devcontainer_is_complete() -> None:
    assert problems(DEVCONTAINER) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda text: text.replace('"make install"', '"pip install ."'), "postCreateCommand"),
        (lambda text: text.replace("[3000, 5000, 8000]", "[3000, 5000]"), "8000"),
        (lambda text: text.replace('"ms-toolsai.jupyter"', '"x.y"'), "ms-toolsai.jupyter"),
        (lambda text: text.rstrip().rstrip("}"), "not JSON"),
    ],
    ids=["command", "port", "extension", "syntax"],
)
def test_broken_devcontainer_fails(tmp_path: Path, change: Any, expected: str) -> None:
    broken = tmp_path / "devcontainer.json"
    broken.write_text(change(DEVCONTAINER.read_text()))
    found = problems(broken)
    assert found and expected in " ".join(found)
