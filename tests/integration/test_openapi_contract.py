"""The OpenAPI document is the contract: a bounded schemathesis run against a real server,
every check on, finds no response the document does not declare and no input it misjudges.

Bounded (examples per operation, every phase once: a ``--max-time`` budget would
repeat fuzzing until it is spent) and seeded, so it is repeatable; the run before this
test existed found a ``detail`` typed as a string, booleans allowed as labels, and
413/503 undeclared.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from serving_harness import Server

pytestmark = pytest.mark.integration


def test_schemathesis_with_every_check_passes_against_the_real_server(
    server: Server, tmp_path: Path
) -> None:
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert binary, "schemathesis is a dev dependency: `uv sync --locked`"
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "HOME": str(tmp_path)}
    done = subprocess.run(
        [
            binary,
            "run",
            f"{server.url}/docs.json",
            "--checks",
            "all",
            "--max-examples",
            "40",
            "--seed",
            "1",
            "--include-path-regex",
            "^/(predict|feedback)$",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
