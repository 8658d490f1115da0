"""The micro-batcher: concurrent callers share model calls, in order, and overload is a 503."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from serving.batching import Batcher, Overloaded


class SlowModel:
    """Echoes each row's ``x``; the first call waits until released, so a queue builds."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.release = threading.Event()

    def __call__(self, jobs: Sequence[list[dict[str, Any]]]) -> list[np.ndarray]:
        if not self.calls:
            self.release.wait(30)
        self.calls.append(sum(len(job) for job in jobs))
        return [np.array([[row["x"]] for row in job]) for job in jobs]


def test_requests_queued_behind_a_busy_model_share_one_call() -> None:
    model = SlowModel()
    sizes: list[int] = []
    batcher = Batcher(model, max_batch_size=100, max_latency_ms=60_000, on_batch=sizes.append)

    async def scenario() -> list[np.ndarray]:
        first = asyncio.ensure_future(batcher([{"x": 0}]))
        await asyncio.sleep(0.05)  # the first call is now inside the model
        rest = [asyncio.ensure_future(batcher([{"x": i}, {"x": -i}])) for i in range(1, 11)]
        await asyncio.sleep(0.05)
        model.release.set()
        return await asyncio.gather(first, *rest)

    results = asyncio.run(scenario())

    assert model.calls == [1, 20]  # ten two-row requests went through one call
    assert sizes == [1, 20]
    assert [r[:, 0].tolist() for r in results[1:]] == [[i, -i] for i in range(1, 11)]


def test_batches_stop_at_max_batch_size_without_splitting_a_request() -> None:
    model = SlowModel()
    batcher = Batcher(model, max_batch_size=5, max_latency_ms=60_000)

    async def scenario() -> None:
        first = asyncio.ensure_future(batcher([{"x": 0}]))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher([{"x": i}] * 2)) for i in range(4)]
        await asyncio.sleep(0.05)
        model.release.set()
        await asyncio.gather(first, *rest)

    asyncio.run(scenario())
    assert model.calls == [1, 4, 4]


def test_a_request_that_waited_too_long_is_refused_as_overloaded() -> None:
    model = SlowModel()
    batcher = Batcher(model, max_batch_size=10, max_latency_ms=1)

    async def scenario() -> None:
        first = asyncio.ensure_future(batcher([{"x": 0}]))
        await asyncio.sleep(0.05)
        late = asyncio.ensure_future(batcher([{"x": 1}]))
        await asyncio.sleep(0.05)  # longer than max_latency_ms behind the busy model
        model.release.set()
        await first
        with pytest.raises(Overloaded):
            await late

    asyncio.run(scenario())


def test_a_model_error_reaches_every_caller_in_the_batch_and_the_batcher_survives() -> None:
    calls = 0

    def failing(jobs: Sequence[list[dict[str, Any]]]) -> list[np.ndarray]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("model broke")
        return [np.zeros((len(job), 1)) for job in jobs]

    batcher = Batcher(failing, max_batch_size=10, max_latency_ms=60_000)

    async def scenario() -> np.ndarray:
        with pytest.raises(ValueError, match="model broke"):
            await batcher([{"x": 1}])
        return await batcher([{"x": 2}])

    assert asyncio.run(scenario()).shape == (1, 1)
