"""Starting, waiting for and stopping a ``bentoml serve`` process.

The demo, the integration tests and the benchmarks all run the real server as a child
process; this is the one place that knows how to tell it is ready and how to stop it
the way an init system would (SIGTERM, so the capture log flushes; SIGKILL only if it
hangs). BentoML's workers are session leaders of their own, so a signal to the server's
process group misses them: the launcher notes the server's descendants while it runs and
kills whichever of them outlive it, whatever happened to the server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import psutil


class ServerError(RuntimeError):
    """The server exited or did not become ready; the message ends with its log's tail."""


def tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


def own_bentoml_home(shared: Path, folder: Path) -> Path:
    """A ``BENTOML_HOME`` for one server that shares ``shared``'s models and Bentos.

    ``bentoml serve`` empties ``$BENTOML_HOME/prometheus_multiproc_dir`` when it starts, so
    a second server on the same home wipes the first one's ``/metrics`` (its counters
    silently restart). Each server gets a home of its own; the stores are symlinked.
    """
    home = folder / "bentoml_home"
    home.mkdir(parents=True, exist_ok=True)
    for store in ("models", "bentos"):
        (shared / store).mkdir(parents=True, exist_ok=True)
        link = home / store
        if not link.is_symlink():
            link.symlink_to((shared / store).resolve(), target_is_directory=True)
    return home


def start(
    command: Sequence[str], log: Path, *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Run ``command`` in its own process group, output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        list(command),
        cwd=cwd,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


# The processes each started server has had, noted while it runs (after it dies, its
# workers are the init process's children and nobody's descendants).
_family: dict[int, dict[int, psutil.Process]] = {}


def _note_family(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    known = _family.setdefault(process.pid, {})
    try:
        for child in psutil.Process(process.pid).children(recursive=True):
            known.setdefault(child.pid, child)
    except psutil.NoSuchProcess:
        pass
    return list(known.values())


def wait_ready(
    url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    *,
    seconds: float = 120,
    endpoint: str = "/readyz",
) -> None:
    """Poll ``{url}{endpoint}`` until it answers 200; fail fast if the process dies."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"the server exited {process.returncode}:\n{tail(log)}")
        _note_family(process)
        try:
            if httpx.get(f"{url}{endpoint}", timeout=2).status_code == 200:
                _note_family(process)
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop(process, timeout=10)
    raise ServerError(f"the server was not ready within {seconds:.0f}s:\n{tail(log)}")


def stop(process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGTERM to the server (as systemd or Kubernetes send it), then SIGKILL its group;
    then SIGKILL every worker it had that is still running, and wait for them to go."""
    family = _note_family(process)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    kill_all(family)
    _family.pop(process.pid, None)
    return int(process.returncode)


def kill_all(processes: Sequence[psutil.Process], timeout: float = 30) -> None:
    """SIGKILL each process still running (psutil checks it is the same process, not a
    reused pid) and wait until they are gone."""
    alive = []
    for member in processes:
        try:
            if member.is_running():
                member.kill()
                alive.append(member)
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=timeout)
