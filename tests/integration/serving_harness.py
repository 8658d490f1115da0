"""Starting and stopping a real `bentoml serve` for the integration tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.settings import PROJECT_ROOT, Settings, load_settings
from serving import launcher
from testbeds.params import write_params

__all__ = ["write_params"]  # the tests take it from here with the rest of the harness


@dataclass(frozen=True)
class Champion:
    tracking_uri: str
    name: str
    version: str
    run_id: str


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    capture: Path
    log: Path
    settings: Settings

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as systemd or Kubernetes would send, then wait for a clean exit."""
        return launcher.stop(self.process, timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(
    folder: Path,
    env: dict[str, str],
    target: str = "serving.service:Classifier",
    port: int | None = None,
    base: Path | None = None,
    **sections: dict[str, Any],
) -> Server:
    """``bentoml serve`` started with the project's params (or ``base``) and ``sections``
    merged over, not yet waited for."""
    capture = folder / "capture"
    sections.setdefault("capture", {})
    sections["capture"] = {"path": str(capture), "flush_seconds": 1.0, **sections["capture"]}
    sections.setdefault("serving", {})
    # A test server follows the registry's alias only when its test asks (reload_seconds):
    # the session's champion is shared, and a swap mid-test would change its answers. One
    # worker unless the test is about several (each one more costs ~7 s of CPU to start,
    # and the suite is CPU-bound on 2 cores).
    sections["serving"] = {"workers": 1, "reload_seconds": 0, **sections["serving"]}
    params = write_params(folder, base, **sections)
    port = port or free_port()
    log = folder / "server.log"
    command = [sys.executable, "-m", "bentoml", "serve", target]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    env = {**env, "MLSTACK_PARAMS": str(params)}
    if env.get("BENTOML_HOME"):  # servers started side by side must not share /metrics
        env["BENTOML_HOME"] = str(launcher.own_bentoml_home(Path(env["BENTOML_HOME"]), folder))
    process = launcher.start(command, log, cwd=PROJECT_ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    return Server(url, process, capture, log, load_settings(params))


def start_server(
    folder: Path,
    env: dict[str, str],
    target: str = "serving.service:Classifier",
    port: int | None = None,
    ready_seconds: float = 90,
    wait_for: str = "/readyz",
    base: Path | None = None,
    **sections: dict[str, Any],
) -> Server:
    server = launch(folder, env, target, port, base, **sections)
    launcher.wait_ready(
        server.url, server.process, server.log, seconds=ready_seconds, endpoint=wait_for
    )
    return server


def refused_start(
    folder: Path, env: dict[str, str], expect: str, seconds: float = 180, base: Path | None = None
) -> str:
    """Start a server that must never get ready: poll ``/readyz`` (never 200) until its log
    says ``expect`` and a few seconds more, then stop it; return the log. A server that
    gets ready, or never says ``expect`` within ``seconds``, fails the test."""
    import time

    import httpx

    server = launch(folder, env, base=base)
    said_at = None
    deadline = time.monotonic() + seconds
    try:
        while said_at is None or time.monotonic() < said_at + 3:
            assert time.monotonic() < deadline, f"no {expect!r} in {seconds:.0f} s:\n" + (
                launcher.tail(server.log)
            )
            try:
                status = httpx.get(f"{server.url}/readyz", timeout=2).status_code
            except httpx.HTTPError:
                status = None
            assert status != 200, "the server got ready:\n" + launcher.tail(server.log)
            if said_at is None and expect in server.log.read_text(errors="replace"):
                said_at = time.monotonic()
            time.sleep(0.5)
    finally:
        launcher.stop(server.process, timeout=30)
    return server.log.read_text(errors="replace")


def run_in_project(root: Path, env: dict[str, str], *args: str) -> str:
    """Run ``python *args`` in a project folder (its params.yaml, its code); return the
    last line it printed."""
    done = subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def schemathesis_run(server: Server, folder: Path) -> subprocess.CompletedProcess[str]:
    """A bounded, seeded schemathesis run of every check against ``server``'s own OpenAPI
    document, on /predict and /feedback (40 examples per operation, every phase once)."""
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert binary, "schemathesis is a dev dependency: `uv sync --locked`"
    return subprocess.run(
        [
            *(binary, "run", f"{server.url}/docs.json", "--checks", "all"),
            *("--max-examples", "40", "--seed", "1"),
            *("--include-path-regex", "^/(predict|feedback)$"),
        ],
        cwd=folder,
        env={**os.environ, "SCHEMATHESIS_HOOKS": "", "HOME": str(folder)},
        capture_output=True,
        text=True,
        timeout=900,
    )
