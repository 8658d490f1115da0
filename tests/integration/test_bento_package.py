"""The package stage's product: a Bento that `bentoml serve <tag>` serves like the repo does."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from serving_harness import Champion, run_in_project, start_server

from serving.service import EXAMPLE_INPUT
from tests.conftest import Project

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_packaged_bento_serves_the_champion(
    champion: Champion, pipeline_project: Project, base_env: dict[str, str], tmp_path: Path
) -> None:
    script = (
        "import json, dataclasses\n"
        "from pipeline.package import package\n"
        "from pipeline.settings import load_settings\n"
        "print(json.dumps(dataclasses.asdict(package(load_settings()))))\n"
    )
    packaged = json.loads(run_in_project(pipeline_project.root, base_env, "-c", script))
    assert packaged["version"] == champion.version and packaged["run_id"] == champion.run_id
    assert packaged["bento_tag"].startswith("mlstack:")

    server = start_server(tmp_path, base_env, target=packaged["bento_tag"])
    try:
        answer = httpx.post(f"{server.url}/predict", json=EXAMPLE_INPUT, timeout=30).json()
    finally:
        assert server.stop() == 0
    assert answer["model"] == {"name": champion.name, "version": champion.version}
    assert len(list(server.capture.rglob("*.parquet"))) == 1
