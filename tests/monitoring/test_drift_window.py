"""``mlstack drift run`` on a capture store that is not tidy: an unreadable file in it, rows
still in write-ahead segments when the run starts.

Each test is a temporary project (a ``params.yaml`` in ``tmp_path``) with the session's
reference set; the job runs in process, without MLflow or the Evidently workspace.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlstack.drift_command import drift_app
from monitoring.capture import LABELS, PREDICTIONS, CaptureWriter, write_frame
from pipeline.paths import REFERENCE_FILE
from pipeline.settings import Settings, load_settings
from tests.monitoring.capture.conftest import corrupt_mid_file, truncate
from tests.monitoring.conftest import DriftData, write_params

pytestmark = pytest.mark.slow

runner = CliRunner()


def drift(root: Path, *args: str) -> dict[str, Any]:
    """``mlstack drift run --json ARGS`` in the project at ``root``: exit 0, its JSON."""
    env = {"MLSTACK_PARAMS": str(root / "params.yaml")}
    command = ["run", "--json", "--no-mlflow", "--no-workspace", *args]
    result = runner.invoke(drift_app, command, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def project(root: Path, drift_data: DriftData, **drift_params: Any) -> Settings:
    write_params(root, **drift_params)
    reference = root / REFERENCE_FILE
    reference.parent.mkdir(parents=True)
    drift_data.reference.sample(4000, random_state=0).to_parquet(reference)
    return load_settings(root / "params.yaml")


def served(
    drift_data: DriftData, settings: Settings, at: datetime, rows: int, seed: int
) -> pd.DataFrame:
    """``rows`` scored rows of 2017 as the service captures them, served at ``at``."""
    frame = drift_data.year(2017).sample(rows, random_state=seed).reset_index(drop=True)
    frame["request_id"] = [f"r{seed}-{i}" for i in range(rows)]
    frame["timestamp"] = pd.Timestamp(at)
    frame["model_name"] = settings.model.name
    frame["model_version"] = "3"
    return frame.drop(columns=[settings.data.target, settings.data.id])


def test_a_corrupt_file_is_quarantined_named_counted_and_the_rest_judged(
    drift_data: DriftData, tmp_path: Path
) -> None:
    """Defect 4 of issue 26: a file with a valid footer and a garbage data page failed
    every run (exit 1, nothing printed, the state stuck). Now the run judges the other
    files, names the file in summary.json, in --json and in a metric, and moves it to
    quarantine/ with its partition path; the next run does not meet it."""
    settings = project(tmp_path, drift_data)
    store = settings.path(settings.capture.path)
    at = datetime.now(UTC) - timedelta(minutes=30)
    for seed in range(6):
        write_frame(store, PREDICTIONS, served(drift_data, settings, at, 250, seed))
    (bad,) = map(Path, write_frame(store, PREDICTIONS, served(drift_data, settings, at, 400, 9)))
    assert corrupt_mid_file(bad) > 0, "some of its row groups still read: none may count"
    labels = served(drift_data, settings, at, 250, 0)[["request_id", "timestamp"]]
    truth = drift_data.year(2017).sample(250, random_state=0)[settings.data.target]
    write_frame(store, LABELS, labels.assign(label=truth.to_numpy()))
    textfile = tmp_path / "drift.prom"

    first = drift(tmp_path, "--textfile", str(textfile))

    moved = store / "quarantine" / PREDICTIONS / bad.parent.name / bad.name
    assert first["status"] == "ok"
    assert first["rows"]["current"] == 1500 and first["rows"]["labeled"] == 250
    (skipped,) = first["window"]["skipped_files"]
    assert skipped["path"] == str(bad) and skipped["moved_to"] == str(moved)
    assert "thrift" in skipped["error"]
    summary = json.loads((Path(first["folder"]) / "summary.json").read_text())
    assert summary["window"]["skipped_files"] == [skipped]
    assert "mlstack_drift_skipped_files{" in textfile.read_text()
    assert any(
        line.startswith("mlstack_drift_skipped_files{") and line.endswith(" 1.0")
        for line in textfile.read_text().splitlines()
    )
    assert moved.exists() and not bad.exists()
    state = json.loads((tmp_path / "reports" / "drift" / "state.json").read_text())
    assert state["until"] == first["window"]["until"], "the state moved on"

    again = drift(tmp_path, "--last", "2h")
    assert again["window"]["skipped_files"] == []
    assert again["rows"]["current"] == 1500


def test_a_truncated_file_is_quarantined_and_the_run_succeeds(
    drift_data: DriftData, tmp_path: Path
) -> None:
    settings = project(tmp_path, drift_data)
    store = settings.path(settings.capture.path)
    at = datetime.now(UTC) - timedelta(minutes=30)
    for seed in range(5):
        write_frame(store, PREDICTIONS, served(drift_data, settings, at, 300, seed))
    (cut,) = map(Path, write_frame(store, PREDICTIONS, served(drift_data, settings, at, 300, 9)))
    truncate(cut)

    first = drift(tmp_path)

    assert first["status"] == "ok" and first["rows"]["current"] == 1500
    assert [s["path"] for s in first["window"]["skipped_files"]] == [str(cut)]
    assert (store / "quarantine" / PREDICTIONS / cut.parent.name / cut.name).exists()
    assert drift(tmp_path, "--last", "2h")["window"]["skipped_files"] == []


def writer(settings: Settings, segments: Path) -> CaptureWriter:
    """One serving worker's capture writer, its own segments folder, not started: its
    rows reach the store when the test flushes it."""
    store = settings.path(settings.capture.path)
    return CaptureWriter(store, segments=segments, numerical=settings.data.features.numerical)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """``frame`` as the records a worker appends, a missing value as None."""
    return [
        {k: (None if v != v else v) for k, v in row.items()} for row in frame.to_dict("records")
    ]


def test_rows_still_in_segments_are_judged_by_the_next_run(
    drift_data: DriftData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 5 of issue 26: the default window ended at now, so rows served before it but
    still in a write-ahead segment fell between two windows. Two workers: worker 1's
    newest rows are compacted, worker 2's older ones still wait in its segment (ending
    the window at the newest compacted timestamp would lose them). Across two runs every
    served row is judged once."""
    settings = project(tmp_path, drift_data, min_rows=100)
    now = datetime.now(UTC).replace(microsecond=0)
    clock = [now]
    monkeypatch.setattr("monitoring.drift_job.inputs.utc_now", lambda: clock[0])
    old = served(drift_data, settings, now - timedelta(minutes=10), 1200, 1)
    write_frame(settings.path(settings.capture.path), PREDICTIONS, old)
    first_worker, second_worker = (writer(settings, tmp_path / f"segments-{n}") for n in (1, 2))
    first_worker.add(PREDICTIONS, records(served(drift_data, settings, now, 100, 2)))
    second_worker.add(
        PREDICTIONS, records(served(drift_data, settings, now - timedelta(seconds=2), 150, 3))
    )
    assert first_worker.flush() == 100
    assert second_worker.pending == 150, "still in its segment when the run starts"

    first = drift(tmp_path)

    assert first["status"] == "ok" and first["rows"]["current"] == 1200

    assert second_worker.flush() == 150  # its next flush, seconds later
    clock[0] = now + timedelta(minutes=1)
    second = drift(tmp_path)

    assert second["window"]["since"] == first["window"]["until"]
    assert second["status"] == "ok" and second["rows"]["current"] == 250
    assert first["rows"]["current"] + second["rows"]["current"] == 1200 + 100 + 150
    settle = timedelta(seconds=settings.capture.flush_seconds + 30)
    assert first["window"]["until"] == (now - settle).isoformat()
    first_worker.close()
    second_worker.close()


def test_an_explicit_window_keeps_its_end(
    drift_data: DriftData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--since alone ends now, --until where it says: only the default window settles."""
    project(tmp_path, drift_data)
    now = datetime.now(UTC).replace(microsecond=0)
    monkeypatch.setattr("monitoring.drift_job.inputs.utc_now", lambda: now)
    since = (now - timedelta(hours=1)).isoformat()
    until = (now - timedelta(minutes=1)).isoformat()

    assert drift(tmp_path, "--since", since)["window"]["until"] == now.isoformat()
    assert drift(tmp_path, "--since", since, "--until", until)["window"]["until"] == until
