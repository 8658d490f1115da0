"""The demo's drift runs and retrain run in its own process: a failure there ends the demo
with a message naming the command and the cause, as the subprocess's exit did before.
(The whole demo, success path included, is tests/integration/test_demo_loop.py.)"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlstack import demo
from pipeline.settings import Settings, load_settings
from tests.imports import ROOT


@pytest.fixture
def empty_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The shipped params in a folder with nothing else: no MLflow store, no reference set,
    no capture."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    return load_settings(tmp_path / "params.yaml")


def ended_with(step: Callable[[Settings, datetime, datetime], object], settings: Settings) -> str:
    """Run a demo step on the last five minutes; the message the demo ended with."""
    until = datetime.now(UTC)
    with pytest.raises(SystemExit) as ended:
        step(settings, until - timedelta(minutes=5), until)
    return str(ended.value.code)


def test_a_drift_run_that_fails_ends_the_demo_naming_the_cause(empty_project: Settings) -> None:
    message = ended_with(demo.judge, empty_project)
    assert message.startswith("demo: mlstack drift run failed: ")
    assert f"no MLflow store at {empty_project.root / 'mlflow.db'}" in message


def test_a_refused_retrain_ends_the_demo_naming_the_reason(empty_project: Settings) -> None:
    message = ended_with(demo.retrain, empty_project)
    assert message.startswith("demo: mlstack retrain refused: 0 labeled row(s)")
    assert not (empty_project.root / "data" / "retrain").exists(), "nothing was written"
