"""The package stage's product: a Bento that `bentoml serve <tag>` serves like the repo does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from serving_harness import Champion, start_server

from pipeline.settings import PROJECT_ROOT
from serving.service import EXAMPLE_INPUT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_packaged_bento_serves_the_champion(
    champion: Champion, base_env: dict[str, str], tmp_path: Path
) -> None:
    script = (
        "import json, dataclasses\n"
        "from pipeline.package import package\n"
        "from pipeline.settings import load_settings\n"
        "print(json.dumps(dataclasses.asdict(package(load_settings()))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=base_env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    packaged = json.loads(done.stdout.strip().splitlines()[-1])
    assert packaged["version"] == champion.version and packaged["run_id"] == champion.run_id
    assert packaged["bento_tag"].startswith("mlstack:")

    server = start_server(tmp_path, base_env, target=packaged["bento_tag"])
    try:
        answer = httpx.post(f"{server.url}/predict", json=EXAMPLE_INPUT, timeout=30).json()
    finally:
        assert server.stop() == 0
    assert answer["model"] == {"name": champion.name, "version": champion.version}
    assert len(list(server.capture.rglob("*.parquet"))) == 1
