"""Starting and stopping a real `bentoml serve` for the integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from pipeline.settings import PROJECT_ROOT, Settings, load_settings


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
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return int(self.process.returncode)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_params(folder: Path, **sections: dict[str, Any]) -> Path:
    """The project's params.yaml with some sections merged over, in ``folder``."""
    raw = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def start_server(
    folder: Path,
    env: dict[str, str],
    target: str = "serving.service:Classifier",
    **sections: dict[str, Any],
) -> Server:
    capture = folder / "capture"
    sections.setdefault("capture", {})
    sections["capture"] = {"path": str(capture), "flush_seconds": 1.0, **sections["capture"]}
    sections.setdefault("serving", {})
    sections["serving"] = {"workers": 2, **sections["serving"]}
    params = write_params(folder, **sections)
    port = free_port()
    log = folder / "server.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=PROJECT_ROOT,
        env={**env, "MLSTACK_PARAMS": str(params)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"bentoml serve exited {process.returncode}:\n{log.read_text()[-4000:]}"
            )
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        os.killpg(process.pid, signal.SIGKILL)
        raise RuntimeError(f"bentoml serve not ready in 90 s:\n{log.read_text()[-4000:]}")
    return Server(url, process, capture, log, load_settings(params))


def run_in_project(root: Path, env: dict[str, str], script: str) -> str:
    """Run Python in a project folder (its params.yaml, its code); return the last line."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]
