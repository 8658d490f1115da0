"""A real server killed with ``kill -9`` mid-stream: nothing is left running on its port, a
new server binds it, and every request answered 200 is in the capture log exactly once.

The numbers of docs/reliability.md ("kill -9 of the server's process group") come from
here: rows lost and rows duplicated are both 0.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import psutil
import pytest
from serving_harness import start_server

from mlstack.replay import feature_records
from monitoring.capture import LABELS, PREDICTIONS, read_kind
from pipeline.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

PRODUCTION = PROJECT_ROOT / "data" / "raw" / "production_2016_2018.parquet"
CLIENTS = 8
KILL_AFTER = 300  # answered requests before the kill: the stream is still going then
# Nothing flushes on its own while the first server runs: every answered row is still in
# its write-ahead segment when the server dies, the case a crash puts most at risk.
HOLD = {"flush_seconds": 3600.0, "flush_rows": 1_000_000}


class Stream:
    """``CLIENTS`` threads posting one-row requests until told to stop; keeps the ids of
    every request answered 200, and sends a label for every tenth of them."""

    def __init__(self, url: str, rows: list[dict[str, object]]) -> None:
        self.url = url
        self.rows = rows
        self.answered: list[str] = []
        self.labeled: list[str] = []
        self.errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,)) for i in range(CLIENTS)]

    def __enter__(self) -> Stream:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)

    def _client(self, index: int) -> None:
        with httpx.Client(timeout=30) as client:
            n = index
            while not self._stop.is_set():
                row = self.rows[n % len(self.rows)]
                n += CLIENTS
                try:
                    answer = client.post(f"{self.url}/predict", json={"instances": [row]})
                except httpx.HTTPError:
                    with self._lock:
                        self.errors += 1
                    time.sleep(0.05)
                    continue
                if answer.status_code != 200:
                    continue
                request_id = answer.json()["predictions"][0]["request_id"]
                with self._lock:
                    self.answered.append(request_id)
                if n % 10 == 0:
                    label = {"labels": [{"request_id": request_id, "label": n % 2}]}
                    try:
                        if client.post(f"{self.url}/feedback", json=label).status_code == 200:
                            with self._lock:
                                self.labeled.append(request_id)
                    except httpx.HTTPError:
                        pass

    def wait_for(self, count: int, seconds: float = 300) -> None:
        deadline = time.monotonic() + seconds
        while len(self.answered) < count:
            assert time.monotonic() < deadline, f"only {len(self.answered)} answered"
            time.sleep(0.1)


def nothing_answers(url: str, seconds: float) -> bool:
    """True once a connection to ``url`` is refused, polling for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/livez", timeout=1)
        except httpx.ConnectError:
            return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def test_kill_9_mid_stream_loses_no_answered_row_and_leaves_nothing_running(
    packaged: str, base_env: dict[str, str], tmp_path: Path
) -> None:
    first = start_server(tmp_path, base_env, capture=HOLD, serving={"workers": 2})
    rows = feature_records(pd.read_parquet(PRODUCTION).head(500), first.settings)
    port = int(first.url.rsplit(":", 1)[1])
    workers = psutil.Process(first.process.pid).children(recursive=True)
    assert len(workers) == 2

    with Stream(first.url, rows) as stream:
        stream.wait_for(KILL_AFTER)
        os.killpg(first.process.pid, signal.SIGKILL)  # the server's group: not its workers
        first.process.wait(30)
        assert nothing_answers(first.url, seconds=10), "a worker outlived its server"
    answered_before, labeled_before = list(stream.answered), list(stream.labeled)
    assert len(answered_before) >= KILL_AFTER
    assert list((tmp_path / "data" / "capture-segments").glob("predictions-*.wal"))

    # the same port, the same folders
    second = start_server(tmp_path, base_env, port=port, serving={"workers": 2})
    try:
        with Stream(second.url, rows) as stream:
            stream.wait_for(50)
        answered_after, labeled_after = stream.answered, stream.labeled
    finally:
        assert second.stop() == 0  # SIGTERM: the rest is compacted on the way out

    captured = read_kind(second.capture, PREDICTIONS)["request_id"]
    answered = [*answered_before, *answered_after]
    lost = set(answered) - set(captured)
    duplicated = captured[captured.duplicated()].tolist()
    assert (len(lost), len(duplicated)) == (0, 0), f"lost {len(lost)}, twice {duplicated[:5]}"
    labels = read_kind(second.capture, LABELS)["request_id"]
    # every acknowledged label is kept once; a label whose answer the kill cut off may be
    # kept too (it was written ahead), so the acknowledged ones are a subset, not the set
    assert {*labeled_before, *labeled_after} <= set(labels) and labels.is_unique
    assert list((tmp_path / "data" / "capture-segments").iterdir()) == []
    assert not any(_alive(worker) for worker in workers)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
