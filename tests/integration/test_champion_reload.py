"""A running ``bentoml serve`` follows the champion alias: ``mlstack model rollback`` moves
it, the workers swap the model between batches while a concurrent client keeps sending,
and every answer and captured row names the version that scored it. A champion that fails
to load (a tampered model) leaves the old one serving and shows on /metrics.

The server follows a copy of the session's registry (tests/champions.py), so moving its
alias changes nothing for the other tests' servers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_harness import Server, start_server

from mlstack.replay import feature_records
from monitoring.capture import read_window
from pipeline.settings import PROJECT_ROOT, load_settings
from tests.champions import add_tampered_version, add_version, champion_version, copy_registry
from tests.conftest import Project

pytestmark = pytest.mark.integration

PRODUCTION = PROJECT_ROOT / "data" / "raw" / "production_2016_2018.parquet"
DEADLINE = 120  # seconds to wait for eventual behaviour (reload_seconds is 1): not a speed test


@dataclass
class Following:
    server: Server
    registry: str
    env: dict[str, str]
    name: str
    first: str  # the version packed and served at start

    def rollback(self, version: str) -> dict[str, Any]:
        """The real ``mlstack model rollback --to VERSION`` on the server's registry."""
        params = self.server.settings.root / "params.yaml"
        done = subprocess.run(
            [sys.executable, "-m", "mlstack.cli", "model", "rollback", "--to", version]
            + ["--no-package", "--json"],
            env={**self.env, "MLSTACK_PARAMS": str(params)},
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        change: dict[str, Any] = json.loads(done.stdout)["change"]
        return change


@pytest.fixture
def following(
    packaged: str,
    base_env: dict[str, str],
    pipeline_project: Project,
    tmp_path: Path,
) -> Iterator[Following]:
    """A server polling its own registry every second; it starts with the packed champion."""
    registry = copy_registry(pipeline_project, tmp_path / "registry")
    env = {**base_env, "MLFLOW_TRACKING_URI": registry}
    name = pipeline_project.settings.model.name
    server = start_server(
        tmp_path / "server", env, ready_seconds=240, serving={"reload_seconds": 1, "workers": 2}
    )
    yield Following(server, registry, env, name, champion_version(registry, name))
    server.stop()


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    settings = load_settings(PROJECT_ROOT / "params.yaml")
    return feature_records(pd.read_parquet(PRODUCTION).head(64), settings)


@dataclass
class Traffic:
    """Clients posting /predict in a loop until stopped: (status, version, request ids)."""

    url: str
    rows: list[dict[str, Any]]
    clients: int = 4
    answers: list[tuple[int, str | None, list[str]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _send(self, offset: int) -> None:
        with httpx.Client(timeout=60) as http:
            sent = offset
            while not self._stop.is_set():
                size = 1 + sent % 4
                start = (sent * 3) % (len(self.rows) - size)
                answer = http.post(
                    f"{self.url}/predict", json={"instances": self.rows[start : start + size]}
                )
                if answer.status_code == 200:
                    body = answer.json()
                    ids = [p["request_id"] for p in body["predictions"]]
                    self.answers.append((200, str(body["model"]["version"]), ids))
                else:
                    self.answers.append((answer.status_code, None, []))
                sent += self.clients

    def __enter__(self) -> Traffic:
        for offset in range(self.clients):
            thread = threading.Thread(target=self._send, args=(offset,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def wait_for(self, version: str, consecutive: int = 20) -> None:
        """Until the last ``consecutive`` answers all name ``version`` (every worker swapped)."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            last = self.answers[-consecutive:]
            if len(last) == consecutive and all(v == version for _, v, _ in last):
                return
            time.sleep(0.2)
        seen = sorted({str(v) for _, v, _ in self.answers[-50:]})
        raise AssertionError(f"no run of {consecutive} answers by v{version}; lately: {seen}")


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metrics(server: Server) -> Samples:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("mlstack_")
    }


def value(found: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, key), v in found.items() if n == name and wanted <= set(key))


def every_worker_swapped(server: Server, replaced: str) -> Samples:
    """The metrics once no worker shows ``replaced`` as served (``livemax`` over workers)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        found = metrics(server)
        if value(found, "mlstack_model_info", version=replaced) == 0:
            return found
        if time.monotonic() > deadline:
            return found  # the caller's assertion names what is still shown
        time.sleep(0.5)


def test_a_rollback_is_followed_without_a_failed_request_and_captured_by_version(
    following: Following, rows: list[dict[str, Any]]
) -> None:
    server, first = following.server, following.first
    second = add_version(following.registry, following.name)

    with Traffic(server.url, rows) as traffic:
        traffic.wait_for(first)
        change = following.rollback(second)
        assert change["version"] == second and change["previous"] == first
        traffic.wait_for(second)

    statuses = {status for status, _, _ in traffic.answers}
    assert statuses == {200}, f"requests failed during the swap: {statuses}"
    answered = {rid: version for _, version, ids in traffic.answers for rid in ids}
    assert set(answered.values()) == {first, second}
    found = metrics(server)
    assert value(found, "mlstack_model_reloads_total") >= 1
    assert value(found, "mlstack_model_info", version=second) == 1
    assert value(found, "mlstack_predictions_total", model_version=second) > 0

    assert server.stop() == 0
    window = read_window(server.capture, server.settings)
    captured = dict(zip(window["request_id"], window["model_version"].astype(str), strict=True))
    assert set(captured) == set(answered)  # every answered row, once
    wrong = {rid: (v, captured[rid]) for rid, v in answered.items() if captured[rid] != v}
    assert not wrong, f"{len(wrong)} rows captured under another version than answered them"
    log = server.log.read_text(errors="replace")
    assert f"now serving {following.name} v{second} (run" in log, "the swap is not logged"


def test_a_champion_that_fails_to_load_leaves_the_old_one_serving(
    following: Following, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    server, first = following.server, following.first
    marker = tmp_path / "pwned"
    tampered = add_tampered_version(following.registry, following.name, tmp_path / "bad", marker)
    good = add_version(following.registry, following.name, like=first)

    with Traffic(server.url, rows, clients=2) as traffic:
        traffic.wait_for(first)
        following.rollback(tampered)
        deadline = time.monotonic() + DEADLINE
        refused = 0.0
        while time.monotonic() < deadline:  # each worker tries it once, then backs off
            refused = value(metrics(server), "mlstack_model_reload_failures_total", reason="unsafe")
            if refused >= server.settings.serving.workers:
                break
            time.sleep(0.5)
        assert refused >= server.settings.serving.workers, "no worker reported the refusal"
        traffic.wait_for(first)  # still the old champion

        # The alias moves on to a good version: followed at once, back-off or not.
        following.rollback(good)
        traffic.wait_for(good)

    assert {status for status, _, _ in traffic.answers} == {200}
    assert {v for _, v, _ in traffic.answers} == {first, good}  # never the tampered one
    assert not marker.exists(), "the tampered pickle ran"
    # A run of answers by the good version can all come from one worker: the other shows
    # it once its own poll has swapped (each worker follows the alias on its own).
    found = every_worker_swapped(server, first)
    assert value(found, "mlstack_model_info", version=good) == 1
    assert value(found, "mlstack_model_info", version=first) == 0
    log = server.log.read_text(errors="replace")
    refusals = [line for line in log.splitlines() if f"v{tampered} not loaded" in line]
    assert refusals and all("UnsafeModel" in line for line in refusals), refusals
