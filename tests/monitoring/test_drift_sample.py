"""A window larger than ``drift.sample_rows``: drifted on a seeded uniform sample, counted whole.

The capture window is read in one streaming pass (:func:`monitoring.capture.read_window_sample`);
its row counts, missing-value shares, model versions and labels are the whole window's,
the drift tests run on the sample. Missing values are planted only in rows no sample
takes, so a share computed on the sample would be 0, not the window's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mlstack.drift_command import drift_app
from monitoring.capture import (
    LABELS,
    PREDICTIONS,
    capture_path,
    read_window,
    read_window_sample,
    sample_frame,
    smallest,
    write_frame,
)
from monitoring.capture import window as capture_window
from monitoring.drift import compare
from monitoring.drift_summary import Summary
from pipeline.environment import TELEMETRY_OFF
from pipeline.io import write_json
from pipeline.paths import IMPORTANCE_FILE, REFERENCE_FILE
from pipeline.settings import Settings, load_settings
from tests.monitoring.conftest import DriftData, concept_flip, covariate_shift, write_params

pytestmark = pytest.mark.slow

runner = CliRunner()
START = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW = ["--since", "2026-01-01T00:00:00Z", "--until", "2026-01-02T00:00:00Z"]
QUIET = ["--no-mlflow", "--no-workspace", "--json"]
ROWS, SAMPLE, LABELED = 4000, 1500, 1000
MISSING = 600  # MAR missing in 15% of the window, in rows outside the sample


def _log(drift_data: DriftData, root: Path, rows: int, settings: Settings) -> pd.DataFrame:
    """``rows`` served rows over one day, in time order (one file); the first ``LABELED``
    of them labeled. MAR is missing, and model version 4 served, only in rows that the
    sample does not take. Returns the rows as written."""
    target = settings.data.target
    frame = drift_data.year(2017).sample(rows, random_state=11).reset_index(drop=True)
    frame["request_id"] = [f"r{i}" for i in range(rows)]
    frame["timestamp"] = [START + timedelta(seconds=10 * i) for i in range(rows)]
    frame["model_name"] = settings.model.name
    frame["model_version"] = "3"
    keys = np.random.default_rng(settings.data.seed).random(rows)
    outside = np.setdiff1d(np.arange(rows), smallest(keys, settings.drift.sample_rows))
    frame["MAR"] = frame["MAR"].astype(object)
    if len(outside) >= MISSING:
        frame.loc[outside[:MISSING], "MAR"] = None
        frame.loc[outside[-10:], "model_version"] = "4"
    labels = frame[["request_id", "timestamp", target]].head(LABELED)
    path = capture_path(settings)
    write_frame(path, PREDICTIONS, frame.drop(columns=[target, settings.data.id]))
    write_frame(path, LABELS, labels.rename(columns={target: "label"}))
    return frame


@pytest.fixture(scope="module")
def project(drift_data: DriftData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("drift-sample")
    write_params(root, sample_rows=SAMPLE)
    _reference(drift_data, root)
    _log(drift_data, root, ROWS, load_settings(root / "params.yaml"))
    return root


def _reference(drift_data: DriftData, root: Path) -> None:
    """What the evaluate stage leaves for the drift job: a reference set and importances."""
    reference = root / REFERENCE_FILE
    reference.parent.mkdir(parents=True)
    drift_data.reference.sample(4000, random_state=0).to_parquet(reference)
    write_json({"metric": "roc_auc", "importance": drift_data.importance}, root / IMPORTANCE_FILE)


def run_json(project: Path) -> dict[str, Any]:
    env = {"MLSTACK_PARAMS": str(project / "params.yaml")}
    result = runner.invoke(drift_app, ["run", *WINDOW, *QUIET], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


@pytest.fixture(scope="module")
def twice(project: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    return run_json(project), run_json(project)


def test_the_drift_tests_run_on_the_sample(twice: tuple[dict[str, Any], ...]) -> None:
    summary = twice[0]
    assert summary["status"] == "ok"
    assert summary["sample"] == {
        "sample_rows": SAMPLE,
        "window_rows": ROWS,
        "labeled_sample_rows": LABELED,  # fewer labeled rows than the sample: all of them
        "labeled_window_rows": LABELED,
        "max_rows": SAMPLE,
        "seed": 42,
    }
    assert summary["data_drift"]["detected"] is False
    assert summary["concept_drift"]["labeled_rows"] == LABELED


def test_counts_and_missing_shares_are_the_whole_window(
    twice: tuple[dict[str, Any], ...],
) -> None:
    summary = twice[0]
    assert summary["rows"]["current"] == ROWS
    assert summary["rows"]["labeled"] == LABELED
    share = MISSING / ROWS
    assert summary["data_quality"]["columns"]["MAR"]["current"] == share
    assert summary["data_quality"]["columns"]["MAR"]["detected"] is True
    assert summary["data_drift"]["columns"]["MAR"]["missing_share"] == share
    assert summary["data_quality"]["columns"]["AGEP"]["current"] == 0.0
    # Version 4 served a few rows, outside the sample: the window is version 3's (the
    # rows the verdicts see, by majority), the one version that names and re-scores it.
    assert summary["model"]["version"] == "3"


def test_the_same_window_gives_the_same_summary(twice: tuple[dict[str, Any], ...]) -> None:
    first, second = ({k: v for k, v in s.items() if k not in ("folder", "report")} for s in twice)
    assert first == second


@pytest.mark.parametrize("scan_rows", [capture_window.SCAN_ROWS, 700])
def test_the_streaming_read_takes_the_rows_the_in_memory_sample_takes(
    project: Path, scan_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In one chunk, and in chunks of 700 rows: the kept rows are pruned between chunks."""
    monkeypatch.setattr(capture_window, "SCAN_ROWS", scan_rows)
    settings = load_settings(project / "params.yaml")
    path = settings.path(settings.capture.path)
    until = START + timedelta(days=1)
    streamed = read_window_sample(path, settings, SAMPLE, 42, START, until)
    whole = read_window(path, settings, START, until)
    in_memory = sample_frame(whole, settings, SAMPLE, 42)
    assert len(streamed.current) == SAMPLE
    pd.testing.assert_frame_equal(streamed.current, in_memory.current.reset_index(drop=True))
    pd.testing.assert_frame_equal(streamed.labeled, in_memory.labeled.reset_index(drop=True))
    assert streamed.totals == in_memory.totals
    assert streamed.totals.missing["MAR"] == MISSING
    assert streamed.current["MAR"].notna().all()  # the planted gaps are outside the sample
    other = read_window_sample(path, settings, SAMPLE, 43, START, until)
    assert set(other.current["request_id"]) != set(streamed.current["request_id"])


def test_a_window_smaller_than_the_sample_is_judged_whole(
    drift_data: DriftData, tmp_path: Path
) -> None:
    write_params(tmp_path)  # sample_rows as in params.yaml: far above 1,500
    settings = load_settings(tmp_path / "params.yaml")
    _log(drift_data, tmp_path, 1500, settings)
    path = settings.path(settings.capture.path)
    until = START + timedelta(days=1)
    sample = read_window_sample(path, settings, settings.drift.sample_rows, 42, START, until)
    assert sample.complete and len(sample.current) == sample.totals.rows == 1500
    whole = read_window(path, settings, START, until)
    reference = drift_data.reference
    sampled = compare(
        reference,
        sample.current,
        settings,
        importance=drift_data.importance,
        labeled=sample.labeled,
        totals=sample.totals,
    )
    full = compare(reference, whole, settings, importance=drift_data.importance)
    assert sampled.model_dump() == full.model_dump()
    assert sampled.sample.sample_rows == sampled.sample.window_rows == 1500


def _sampled(drift_data: DriftData, current: pd.DataFrame, rows: int) -> Summary:
    settings = drift_data.settings
    settings = settings.model_copy(
        update={"drift": settings.drift.model_copy(update={"sample_rows": rows})}
    )
    sample = sample_frame(current, settings, rows, settings.data.seed)
    return compare(
        drift_data.reference,
        sample.current,
        settings,
        importance=drift_data.importance,
        labeled=sample.labeled,
        totals=sample.totals,
    )


def _verdicts(summary: Summary) -> dict[str, Any]:
    return {
        "data": summary.data_drift.detected,
        "columns": sorted(c for c, v in summary.data_drift.columns.items() if v.detected),
        "prediction": summary.prediction_drift.detected,
        "performance": summary.performance.detected,
        "concept": summary.concept_drift.detected,
        "quality": summary.data_quality.detected,
    }


def test_a_sample_of_a_shifted_window_gives_the_whole_windows_verdicts(
    drift_data: DriftData,
) -> None:
    """20,000 shifted rows judged whole and on a 5,000-row sample: the same columns drift."""
    current = covariate_shift(drift_data.year(2017).sample(20_000, random_state=3))
    whole = compare(
        drift_data.reference, current, drift_data.settings, importance=drift_data.importance
    )
    sampled = _sampled(drift_data, current, 5000)
    assert sampled.sample.sample_rows == 5000 and sampled.rows.current == 20_000
    assert _verdicts(sampled) == _verdicts(whole)
    assert _verdicts(whole)["columns"] == ["AGEP", "MAR"]


def test_a_sample_of_flipped_labels_is_still_concept_drift(drift_data: DriftData) -> None:
    target = drift_data.settings.data.target
    current = concept_flip(drift_data.year(2018).sample(20_000, random_state=4), target)
    sampled = _sampled(drift_data, current, 5000)
    assert sampled.sample.labeled_sample_rows == 5000
    assert sampled.rows.labeled == 20_000
    assert sampled.concept_drift.detected is True
    assert sampled.data_drift.detected is False


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (0, "drift.sample_rows"),
        (-5, "drift.sample_rows"),
        (500, "drift.min_rows"),  # below min_rows: a judged window would be judged on fewer
    ],
)
def test_a_bad_sample_size_is_refused_naming_the_key(
    value: int, named: str, tmp_path: Path
) -> None:
    raw = yaml.safe_load(write_params(tmp_path).read_text())
    raw["drift"]["sample_rows"] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    env = {**os.environ, **TELEMETRY_OFF, "MLSTACK_PARAMS": str(tmp_path / "params.yaml")}
    done = subprocess.run(
        [sys.executable, "-m", "mlstack.cli", "drift", "run", "--no-mlflow"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "drift.sample_rows" in lines[0] and named in lines[0]
    assert not (tmp_path / "reports").exists()


def test_an_s3_capture_log_is_streamed_too(
    drift_data: DriftData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The streaming read through fsspec's s3fs, against a real S3 API (moto's server)."""
    import boto3

    from serving import launcher
    from testbeds.team_servers import VENV_BIN, free_port, wait_http

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "moto.log"
    moto = launcher.start(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        log,
        env={**os.environ, **TELEMETRY_OFF},
    )
    try:
        wait_http(f"{url}/moto-api/", moto, log, 60)
        credentials = {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "mlstack-test",
            "AWS_SECRET_ACCESS_KEY": "mlstack-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        for name, value in credentials.items():
            monkeypatch.setenv(name, value)
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket="drift-sample")
        raw = yaml.safe_load(write_params(tmp_path, sample_rows=SAMPLE).read_text())
        raw["capture"]["path"] = "s3://drift-sample/capture"
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
        settings = load_settings(tmp_path / "params.yaml")
        _log(drift_data, tmp_path, ROWS, settings)
        path, until = "s3://drift-sample/capture", START + timedelta(days=1)
        streamed = read_window_sample(path, settings, SAMPLE, 42, START, until)
        in_memory = sample_frame(read_window(path, settings, START, until), settings, SAMPLE, 42)
        assert streamed.totals == in_memory.totals
        assert streamed.totals.rows == ROWS and streamed.totals.missing["MAR"] == MISSING
        pd.testing.assert_frame_equal(streamed.current, in_memory.current.reset_index(drop=True))
    finally:
        launcher.stop(moto)


@pytest.mark.parametrize(
    "flood",
    [50, 5000],  # fewer label rows than the window's predictions: joined, then counted;
    # more: the window's ids are read first and every chunk of labels is cut to them
)
def test_labels_the_window_did_not_serve_are_counted_and_dropped(
    drift_data: DriftData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flood: int
) -> None:
    """Feedback open without a token takes labels for any id (defect 11): the join keeps
    only the window's, counts the rest (one late label for an earlier window among them),
    and never holds more label ids than the smaller side."""
    write_params(tmp_path)
    _reference(drift_data, tmp_path)
    settings = load_settings(tmp_path / "params.yaml")
    served = _log(drift_data, tmp_path, 1500, settings)
    path = capture_path(settings)
    value = served[settings.data.target].iloc[0]
    earlier = START - timedelta(hours=1)
    early = served.head(1).assign(request_id="early", timestamp=earlier)
    write_frame(path, PREDICTIONS, early.drop(columns=[settings.data.target, settings.data.id]))
    stray = pd.DataFrame(
        {
            "request_id": ["early", *(f"never-{i}" for i in range(flood))],
            "timestamp": START + timedelta(hours=2),
            "label": value,
        }
    )
    write_frame(path, LABELS, stray)
    held: list[int] = []
    streamed_labels = capture_window._streamed_labels

    def spy(*args: Any) -> capture_window.LatestLabels:
        latest = streamed_labels(*args)
        held.append(len(latest.ids))
        return latest

    monkeypatch.setattr(capture_window, "_streamed_labels", spy)
    until = START + timedelta(days=1)
    sample = read_window_sample(path, settings, settings.drift.sample_rows, 42, START, until)
    assert sample.labels_unjoined == flood + 1
    assert len(sample.labeled) == sample.totals.labeled == LABELED
    assert sample.labeled["request_id"].str.startswith("r").all()
    label_rows = LABELED + flood + 1
    # held: every label when they are fewer than the window's 1,500 predictions; else only
    # the labels of served ids, never more ids than the smaller side
    assert held == [label_rows if label_rows <= 1500 else LABELED]
    whole = read_window(path, settings, START, until)
    assert whole[settings.data.target].notna().sum() == LABELED

    env = {"MLSTACK_PARAMS": str(tmp_path / "params.yaml")}
    result = runner.invoke(drift_app, ["run", *WINDOW, *QUIET], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["window"]["labels_unjoined"] == flood + 1
