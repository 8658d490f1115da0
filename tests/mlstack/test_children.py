"""A child command stops with the command that started it (``mlstack retrain``'s dvc repro).

Real processes: a parent runs ``run_in_group`` on a child that starts a grandchild (as dvc
starts a stage); SIGTERM or SIGINT to the parent alone must leave none of them running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipeline.settings import PROJECT_ROOT

# The child: starts a grandchild that ignores nothing and sleeps, writes both pids, sleeps.
CHILD = """
import subprocess, sys, time, pathlib
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
pathlib.Path(sys.argv[1]).write_text(f"{grandchild.pid}")
time.sleep(600)
"""
PARENT = """
import sys
from pathlib import Path
from mlstack.children import run_in_group
code = run_in_group([sys.executable, "-c", sys.argv[1], sys.argv[2]], cwd=Path.cwd())
print("finished", code)
"""


def _wait_for(path: Path, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"{path} was never written")


def _gone(pid: int, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_command_stops_its_children(tmp_path: Path, signum: int) -> None:
    pids = tmp_path / "pids"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD, str(pids)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        grandchild = int(_wait_for(pids))
        child = psutil.Process(parent.pid).children()[0].pid
        os.kill(parent.pid, signum)  # the command alone, as `kill PID` or systemd sends it
        assert parent.wait(60) == 128 + signum
        assert _gone(child) and _gone(grandchild)
        assert "finished" not in (parent.stdout.read() if parent.stdout else "")
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_child_that_finishes_returns_its_status(tmp_path: Path) -> None:
    from mlstack.children import run_in_group

    code = run_in_group([sys.executable, "-c", "raise SystemExit(3)"], cwd=tmp_path)
    assert code == 3
