"""Setup (l), the in-process limit: the most this model can score on these cores.

The service's own scoring function (``serving.scoring.prepare_scorer``: the compiled input
path, checked against the model at load as the service checks it), on the same champion,
called on the same batches as each load's bodies (one body's rows per call, already
decoded: no HTTP, no JSON, no validation, no capture), from as many worker processes as
the service has, each with the service's native-thread cap (``serving.model_threads``),
for the load's duration. Its figure is rows per second; a/limit compares the service's
good rows per second with it (for a one-row load, requests and rows are the same unit).

At the one-row loads the service batches concurrent requests into one model call, which
the limit does not: a/limit can pass 1 there. The 100-row load is the one it bounds.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Scored:
    """One worker's share of a limit run: model calls, rows scored, seconds, and each call's
    seconds (for the percentiles)."""

    calls: int
    rows: int
    seconds: float
    call_seconds: list[float]


def _scorer() -> Any:
    """The champion's scorer, built as each service worker builds it."""
    from pipeline.settings import load_settings
    from pipeline.tracking import champion_uri, load_model, tracking_uri
    from serving.scoring import prepare_scorer

    settings = load_settings()
    scorer = prepare_scorer(load_model(champion_uri(settings), tracking_uri(settings)), settings)
    if scorer.compiled is None:
        raise RuntimeError(f"the champion does not take the compiled path: {scorer.reason}")
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=settings.serving.model_threads)
    return scorer


def score_for(scorer: Any, batches: Sequence[Rows], seconds: float) -> Scored:
    """Score ``batches`` in turn, round and round, for ``seconds``."""
    calls = rows = 0
    timings: list[float] = []
    start = time.perf_counter()
    end = start + seconds
    now = start
    while now < end:
        batch = batches[calls % len(batches)]
        scorer.scored(batch, regressor=False)  # what the service calls
        after = time.perf_counter()
        timings.append(after - now)
        now = after
        calls += 1
        rows += len(batch)
    return Scored(calls, rows, now - start, timings)


def _work(connection: Connection) -> None:
    """A worker process: build the scorer, say ready, then run each task it is sent."""
    try:
        scorer = _scorer()
    except Exception as error:  # noqa: BLE001 - reported to the parent, which exits
        connection.send(f"{type(error).__name__}: {error}")
        return
    connection.send("ready")
    while (task := connection.recv()) is not None:
        batches, seconds = task
        connection.send(score_for(scorer, batches, seconds))


class Limit:
    """``workers`` processes, each holding the champion's scorer, run together per load."""

    def __init__(self, connections: list[Connection]) -> None:
        self.connections = connections

    def run(self, batches: Sequence[Rows], seconds: float) -> list[Scored]:
        """Every worker scores ``batches`` for ``seconds``, all at once; their shares."""
        for connection in self.connections:
            connection.send((list(batches), seconds))
        return [connection.recv() for connection in self.connections]


@contextmanager
def started(workers: int) -> Iterator[Limit]:
    """The limit's worker processes (spawned: a fresh interpreter each, as the service's
    workers), stopped on exit."""
    context = multiprocessing.get_context("spawn")
    processes, connections = [], []
    try:
        for _ in range(workers):
            parent, child = context.Pipe()
            process = context.Process(target=_work, args=(child,), daemon=True)
            process.start()
            processes.append(process)
            connections.append(parent)
        for connection in connections:
            message = connection.recv()
            if message != "ready":
                raise RuntimeError(f"the in-process limit did not start: {message}")
        yield Limit(connections)
    finally:
        for connection, process in zip(connections, processes, strict=False):
            try:
                connection.send(None)
            except (BrokenPipeError, OSError):
                pass
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()


def percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` quantile (0-1) of ``values``, nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]
