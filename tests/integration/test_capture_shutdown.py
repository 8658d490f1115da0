"""The capture log end to end: a SIGTERM flushes exactly what was served; a replay runs clean."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from serving_harness import Server, start_server

from mlstack.replay import feature_records, run_replay
from monitoring.capture import read_kind, read_window
from pipeline.schema import PREDICTION, proba_column
from pipeline.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

PRODUCTION = PROJECT_ROOT / "data" / "raw" / "production_2016_2018.parquet"
LABELS = PROJECT_ROOT / "data" / "raw" / "production_2016_2018_labels.parquet"


@pytest.fixture
def quiet_server(packaged: str, base_env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    """Flushes only on shutdown: whatever reaches disk got there through the SIGTERM path."""
    running = start_server(
        tmp_path,
        base_env,
        capture={"flush_seconds": 3600.0, "flush_rows": 1_000_000},
        serving={"workers": 2},  # each flushes its own rows on SIGTERM
    )
    yield running
    running.stop()


def test_sigterm_flushes_exactly_what_was_served(quiet_server: Server) -> None:
    server = quiet_server
    settings = server.settings
    frame = pd.read_parquet(PRODUCTION).head(240)
    rows = feature_records(frame, settings)

    singles = asyncio.run(run_replay(server.url, rows[:200], concurrency=16))
    batch = httpx.post(f"{server.url}/predict", json={"instances": rows[200:]}, timeout=60)
    refused = httpx.post(f"{server.url}/predict", json={"instances": [{"AGEP": 3}]}, timeout=30)
    served = [*singles.request_ids, *(p["request_id"] for p in batch.json()["predictions"])]
    labeled = {request_id: str(i % 2) for i, request_id in enumerate(served[:90])}
    feedback = httpx.post(
        f"{server.url}/feedback",
        json={"labels": [{"request_id": r, "label": v} for r, v in labeled.items()]},
        timeout=30,
    )
    assert singles.ok == 200 and batch.status_code == 200 and refused.status_code == 400
    assert feedback.json()["accepted"] == 90
    assert not list(server.capture.rglob("*.parquet")), "nothing should be flushed yet"

    assert server.stop() == 0

    window = read_window(server.capture, settings)
    assert sorted(window["request_id"]) == sorted(served)  # none lost, none twice
    assert window["request_id"].is_unique
    target = settings.data.target
    joined = window.set_index("request_id")[target]
    assert joined[list(labeled)].tolist() == list(labeled.values())
    assert joined.drop(list(labeled)).isna().all()
    assert len(read_kind(server.capture, "labels")) == 90
    assert {PREDICTION, proba_column("0"), proba_column("1"), "model_version"} <= set(window)
    assert window["AGEP"].tolist() == frame["AGEP"].tolist() or sorted(window["AGEP"]) == sorted(
        frame["AGEP"]
    )
    assert not list(server.capture.rglob("*.tmp"))


def test_replay_of_2016_production_rows_has_no_server_errors(server: Server) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlstack.cli",
            "replay",
            str(PRODUCTION),
            "--url",
            server.url,
            "--labels",
            str(LABELS),
            "--limit",
            "2000",
            "--concurrency",
            "32",
            "--json",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout)
    assert (figures["sent"], figures["ok"], figures["errors"]) == (2000, 2000, 0)
    assert (figures["labels_sent"], figures["labels_accepted"]) == (2000, 2000)
