"""The server launcher's failure paths, with real child processes (no server needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
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


# A "server" shaped like `bentoml serve`: it starts a worker in a session of its own that
# answers HTTP on the port, then waits. A signal to the server's process group misses it.
SERVER_WITH_A_WORKER = """
import subprocess, sys, time
worker = (
    "import http.server, sys\\n"
    "class Ok(http.server.BaseHTTPRequestHandler):\\n"
    "    def do_GET(self):\\n"
    "        self.send_response(200); self.end_headers()\\n"
    "    def log_message(self, *args):\\n"
    "        pass\\n"
    "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), Ok).serve_forever()\\n"
)
subprocess.Popen([sys.executable, "-c", worker, sys.argv[1]], start_new_session=True)
time.sleep(600)
"""


def test_stop_kills_the_workers_even_after_the_server_was_killed(tmp_path: Path) -> None:
    import os
    import signal
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    process = launcher.start(
        [sys.executable, "-c", SERVER_WITH_A_WORKER, str(port)], tmp_path / "l"
    )
    launcher.wait_ready(url, process, tmp_path / "l", seconds=60)
    os.killpg(process.pid, signal.SIGKILL)  # the worker, a session leader, survives this
    process.wait(10)
    assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200

    assert launcher.stop(process) == -signal.SIGKILL

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/readyz", timeout=5)
