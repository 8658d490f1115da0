"""What the benchmarks share: the environment they run tools in, servers started and
always stopped, a machine description, and Markdown tables."""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.environment import TELEMETRY_OFF
from pipeline.settings import PROJECT_ROOT

ROOT = PROJECT_ROOT


def tool_env(**extra: str) -> dict[str, str]:
    """The current environment with telemetry off everywhere, plus ``extra``."""
    env = {**os.environ, **TELEMETRY_OFF, **extra}
    env.pop("PYTHONPATH", None)
    return env


def telemetry_off() -> None:
    """Turn telemetry off in this process too (an in-process benchmark imports Evidently
    and MLflow itself); a value the caller already set is kept."""
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)


def stop_on_sigterm() -> None:
    """SIGTERM (``kill``, a CI timeout) unwinds like Ctrl-C: every ``finally`` runs, so the
    servers and temporary folders a benchmark started do not outlive it."""

    def unwind(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, unwind)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server process started in its own process group by :mod:`serving.launcher`."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 30) -> None:
        """The launcher's stop (SIGTERM, so the capture log flushes; SIGKILL if it hangs),
        then SIGKILL to whatever is left of the group, so nothing outlives the benchmark."""
        from serving.launcher import stop

        try:
            stop(self.process, timeout=timeout)
        finally:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)


@contextmanager
def running(
    name: str,
    args: Sequence[str],
    env: dict[str, str],
    log: Path,
    port: int,
    cwd: Path = ROOT,
    ready: str = "/readyz",
) -> Iterator[Server]:
    """Start ``args`` (a server on 127.0.0.1:``port``), wait until ``ready`` answers 200,
    stop it on exit."""
    from serving.launcher import start, wait_ready

    process = start(args, log, cwd=cwd, env=env)
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    try:
        wait_ready(server.url, process, log, seconds=180, endpoint=ready)
        yield server
    finally:
        server.stop()


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
