"""What the benchmarks share: the environment they run tools in, servers started and
always stopped, a machine description, and Markdown tables."""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.settings import PROJECT_ROOT
from pipeline.tracking import TELEMETRY_OFF

ROOT = PROJECT_ROOT


def tool_env(**extra: str) -> dict[str, str]:
    """The current environment with telemetry off everywhere, plus ``extra``."""
    env = {**os.environ, **TELEMETRY_OFF, **extra}
    env.pop("PYTHONPATH", None)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server process started in its own process group, so all its workers stop with it."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to the leader (its graceful stop stops the workers), then SIGKILL to the
        whole process group, so nothing it started outlives the benchmark."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def pids(self) -> list[int]:
        """The server's process and all its descendants (BentoML and uvicorn fork workers)."""
        import psutil

        try:
            parent = psutil.Process(self.process.pid)
            return [parent.pid, *(p.pid for p in parent.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []


@contextmanager
def running(
    name: str,
    args: Sequence[str],
    env: dict[str, str],
    log: Path,
    port: int,
    ready_path: str = "/readyz",
    timeout: float = 120,
) -> Any:
    """Start ``args`` (a server on 127.0.0.1:``port``), wait until ready, stop it on exit."""
    import httpx

    log.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        list(args),
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited {process.returncode}:\n{_tail(log)}")
            with suppress(httpx.HTTPError):
                if httpx.get(server.url + ready_path, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready in {timeout:.0f} s:\n{_tail(log)}")
            time.sleep(0.5)
        yield server
    finally:
        server.stop()


def _tail(log: Path, chars: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def machine() -> dict[str, str]:
    """Cores, memory, load and the versions that matter, for the header of every table."""
    import psutil

    memory = psutil.virtual_memory().total / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "cpu": f"{os.cpu_count()} cores ({platform.processor() or platform.machine()})",
        "memory": f"{memory:.1f} GiB",
        "load average (1, 5, 15 min)": load,
        "python": sys.version.split()[0],
        "kernel": platform.release(),
    }


def versions(*packages: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in packages:
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} (not installed)")
    return ", ".join(found)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def header(title: str) -> str:
    lines = [f"## {title}", ""]
    lines += [f"- {key}: {value}" for key, value in machine().items()]
    return "\n".join(lines)
