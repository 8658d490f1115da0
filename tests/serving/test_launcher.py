"""The server launcher's failure paths, with real child processes (no server needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from serving import launcher

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing answers HTTP there


def test_a_server_that_dies_is_reported_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    process = launcher.start([sys.executable, "-c", "print('boom: bad config'); exit(3)"], log)
    with pytest.raises(launcher.ServerError, match=r"exited 3:\n.*boom: bad config"):
        launcher.wait_ready(CLOSED, process, log, seconds=30)


def test_a_server_that_never_gets_ready_is_stopped(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    process = launcher.start([sys.executable, "-c", "import time; time.sleep(120)"], log)
    with pytest.raises(launcher.ServerError, match="not ready within 1s"):
        launcher.wait_ready(CLOSED, process, log, seconds=1)
    assert process.poll() is not None, "the process was left running"


def test_stop_terminates_and_returns_the_exit_code(tmp_path: Path) -> None:
    process = launcher.start([sys.executable, "-c", "import time; time.sleep(120)"], tmp_path / "l")
    assert launcher.stop(process, timeout=10) == -15  # SIGTERM
    assert launcher.stop(process) == -15, "stopping twice is harmless"
