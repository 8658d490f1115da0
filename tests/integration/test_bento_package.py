"""The package stage's product: a Bento that `bentoml serve <tag>` serves like the repo does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from serving_harness import Champion, run_in_project, start_server

from pipeline.paths import PACKAGE_REPORT
from serving.service import EXAMPLE_INPUT
from tests.conftest import Project

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FRESH_SHELL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # /etc/profile


def test_packaged_bento_serves_the_champion(
    champion: Champion, pipeline_project: Project, base_env: dict[str, str], tmp_path: Path
) -> None:
    """The package stage as DVC runs it, from a shell whose PATH has no uv (a fresh shell:
    no ~/.local/bin, no virtualenv): `bentoml build` must find the environment's own."""
    bare = {**base_env, "PATH": FRESH_SHELL_PATH}
    assert shutil.which("uv", path=bare["PATH"]) is None, "the test needs a PATH without uv"
    run_in_project(pipeline_project.root, bare, "-m", "pipeline.package")
    packaged = json.loads((pipeline_project.root / PACKAGE_REPORT).read_text())
    assert packaged["version"] == champion.version and packaged["run_id"] == champion.run_id
    assert packaged["bento_tag"].startswith("mlstack:")

    server = start_server(tmp_path, base_env, target=packaged["bento_tag"])
    try:
        answer = httpx.post(f"{server.url}/predict", json=EXAMPLE_INPUT, timeout=30).json()
    finally:
        assert server.stop() == 0
    assert answer["model"] == {"name": champion.name, "version": champion.version}
    assert len(list(server.capture.rglob("*.parquet"))) == 1
