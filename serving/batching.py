"""Adaptive micro-batching: concurrent requests share one model call.

The model's cost is mostly per call, not per row (the column transformer alone costs
milliseconds whatever the row count), so under load the rows of many requests should
go through one ``predict_proba``. The rule is greedy: while one batch is in the model,
arriving requests queue; when the model is free it takes everything queued, up to
``max_batch_size`` rows. Batches therefore grow with load and stay at one request when
traffic is light, without estimating latencies. A request that waited longer than
``max_latency_ms`` before its batch started is refused with 503 (the worker is
overloaded), so a client is never left waiting without bound.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio

Result = TypeVar("Result")


class Overloaded(RuntimeError):
    """The request waited longer than ``max_latency_ms`` for a batch: answer 503."""


@dataclass
class _Job(Generic[Result]):
    rows: list[dict[str, Any]]
    future: asyncio.Future[Result]
    queued: float = field(default_factory=time.monotonic)


class Batcher(Generic[Result]):
    """Feeds ``predict`` (a blocking batch function) from concurrent async callers.

    ``predict`` takes the rows of several requests and returns one result per request,
    in order; each caller gets its own.
    """

    def __init__(
        self,
        predict: Callable[[Sequence[list[dict[str, Any]]]], list[Result]],
        max_batch_size: int,
        max_latency_ms: float,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_latency = max_latency_ms / 1000
        self.on_batch = on_batch
        self._queue: deque[_Job[Result]] = deque()
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None

    async def __call__(self, rows: list[dict[str, Any]]) -> Result:
        if self._runner is None or self._runner.done():
            self._wake = asyncio.Event()
            self._runner = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(rows, future))
        assert self._wake is not None
        self._wake.set()
        return await future

    def _take(self) -> list[_Job[Result]]:
        """The next batch: queued jobs in order, whole, up to ``max_batch_size`` rows."""
        now = time.monotonic()
        batch: list[_Job[Result]] = []
        size = 0
        while self._queue:
            job = self._queue[0]
            if now - job.queued > self.max_latency:
                self._queue.popleft()
                if not job.future.done():
                    job.future.set_exception(Overloaded("process is overloaded"))
                continue
            if batch and size + len(job.rows) > self.max_batch_size:
                break
            batch.append(self._queue.popleft())
            size += len(job.rows)
        return batch

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._take()
                if not batch:
                    continue
                if self.on_batch is not None:
                    self.on_batch(sum(len(job.rows) for job in batch))
                try:
                    results = await anyio.to_thread.run_sync(
                        self.predict, [job.rows for job in batch]
                    )
                except Exception as error:  # noqa: BLE001 - every waiter gets the error
                    for job in batch:
                        if not job.future.done():
                            job.future.set_exception(error)
                    continue
                for job, result in zip(batch, results, strict=True):
                    if not job.future.done():
                        job.future.set_result(result)
