"""Child commands that stop with the command that started them.

``mlstack retrain`` runs ``dvc repro``, which runs each stage as a process of its own.
Killed alone, the command would leave them running: a ``promote`` nobody waits for moves
``@champion`` minutes later. So the child runs in a process group of its own, and a
SIGTERM or SIGINT to the command (systemd, Kubernetes, Ctrl-C) is passed to the whole
group; whatever still runs after a grace period, and any descendant that left the group,
is killed. The command then exits 128 + the signal's number, as a shell reports it.
(SIGKILL cannot be caught: after ``kill -9`` of the command its children run on.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

import psutil

STOPPED_BY = (signal.SIGTERM, signal.SIGINT)
POLL_SECONDS = 0.1


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        found: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
        return found
    except psutil.NoSuchProcess:
        return []


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


def _kill(processes: Sequence[psutil.Process]) -> None:
    for member in processes:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(processes, timeout=10)


def run_in_group(
    command: Sequence[str],
    *,
    cwd: Path,
    stdout: IO[Any] | int | None = None,
    grace_seconds: float = 30.0,
) -> int:
    """Run ``command`` to the end and return its exit status; stop it with this process.

    On SIGTERM or SIGINT (caught only in the main thread, where Python delivers them) the
    group gets SIGTERM, then SIGKILL after ``grace_seconds``, and this raises SystemExit.
    """
    process = subprocess.Popen(command, cwd=cwd, stdout=stdout, start_new_session=True)
    received: list[int] = []
    family: list[psutil.Process] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if not received:
            family.extend(_descendants(process.pid))  # before they exit and reparent
            _signal_group(process.pid, signal.SIGTERM)
        received.append(signum)

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {signum: signal.signal(signum, forward) for signum in STOPPED_BY}
    try:
        deadline: float | None = None
        while process.poll() is None:
            if received and deadline is None:
                deadline = time.monotonic() + grace_seconds
            if deadline is not None and time.monotonic() > deadline:
                _signal_group(process.pid, signal.SIGKILL)
            time.sleep(POLL_SECONDS)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if process.poll() is None:  # an exception in this process: the child goes with it
            family.extend(_descendants(process.pid))
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(10)
    if received:
        _kill([member for member in family if member.is_running()])
        raise SystemExit(128 + received[0])
    return int(process.returncode)
