"""The devcontainer: .devcontainer/devcontainer.json checked structurally.

check-jsonschema vendors no devcontainer schema and none installs from the registries here;
the structural check (mlstack.deploy.structure, which ``mlstack deploy check`` runs too) is
tested here on the committed file and on broken copies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlstack.deploy.structure import devcontainer_problems
from tests.deploy.tools import ROOT

pytestmark = pytest.mark.deploy

DEVCONTAINER = ROOT / ".devcontainer" / "devcontainer.json"


def problems(path: Path) -> list[str]:
    return devcontainer_problems(path, ROOT)


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
