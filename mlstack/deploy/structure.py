"""The checks for files no real validator installs here, by their structure.

The Jenkinsfile: no Groovy or declarative-pipeline parser installs from the registries, so
it is checked for balanced braces outside strings and comments, the declarative sections
and a ``steps`` block in every stage (a Jenkins linter would be stricter). The devcontainer:
check-jsonschema vendors no devcontainer schema, so the file is checked for what the project
needs: strict JSON, a Python image, uv, ``make install`` after creation, the ports of
``bentoml serve`` (params.yaml ``serving.port``), ``mlflow ui`` and ``evidently ui`` (the
README's ``--port``) forwarded, and the VS Code Python and Jupyter extensions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

EXTENSIONS = {"ms-python.python", "ms-toolsai.jupyter"}


def declarative_problems(text: str) -> list[str]:
    """What breaks a declarative pipeline's shape: braces, sections, stages without steps."""
    strings = r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\""
    code = re.sub(rf"//[^\n]*|{strings}", lambda m: "" if m[0].startswith("//") else "''", text)
    problems, depth = [], 0
    for char in code:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            problems.append("a '}' closes nothing")
            depth = 0
    if depth:
        problems.append(f"{depth} '{{' never closed")
    if not re.match(r"\s*pipeline\s*\{", code):
        problems.append("does not start with 'pipeline {'")
    sections = [m.group(1) for m in re.finditer(r"^ {4}(\w+)\s*[{(]", code, re.M)]
    for needed in ("agent", "stages"):
        if needed not in sections:
            problems.append(f"no top-level '{needed}' section")
    for _name, body in re.findall(r"stage\((''|\w+)\)\s*\{(.*?)\n {8}\}", code, re.S):
        if "steps" not in body:
            problems.append(f"a stage without steps: {body.strip()[:40]}")
    if len(re.findall(r"\bstage\(", code)) != len(re.findall(r"\bsteps\s*\{", code)):
        problems.append("not one steps block per stage")
    return problems


def expected_ports(root: Path) -> set[int]:
    params = yaml.safe_load((root / "params.yaml").read_text())
    readme = (root / "README.md").read_text()
    ports = {int(params["serving"]["port"])}
    for command in ("mlflow ui", "evidently ui"):
        found = re.search(re.escape(command) + r" [^\n]*--port (\d+)", readme)
        assert found, f"README gives no --port for {command}"
        ports.add(int(found.group(1)))
    return ports


def devcontainer_problems(path: Path, root: Path) -> list[str]:
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
    missing = expected_ports(root) - set(spec.get("forwardPorts", []))
    if missing:
        found.append(f"ports not forwarded: {sorted(missing)}")
    vscode = spec.get("customizations", {}).get("vscode", {})
    lacking = EXTENSIONS - set(vscode.get("extensions", []))
    if lacking:
        found.append(f"extensions missing: {sorted(lacking)}")
    return [f"{path}: {problem}" for problem in found]
