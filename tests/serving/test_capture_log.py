"""The capture log's own contract: complete files, bounded queue, one frame back per window."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from monitoring.capture import (
    LABELS,
    PREDICTIONS,
    CaptureWriter,
    read_kind,
    read_window,
    to_frame,
    write_frame,
)
from pipeline.schema import PREDICTION
from pipeline.settings import Settings, load_settings

DAY = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


def prediction(
    settings: Settings, request_id: str, when: datetime, age: float = 40.0
) -> dict[str, Any]:
    features = settings.data.features
    row: dict[str, Any] = {"request_id": request_id, "timestamp": when}
    row.update({"model_name": "m", "model_version": "3"})
    row.update({column: age for column in features.numerical})
    row.update({column: "1" for column in features.categorical})
    row.update({PREDICTION: "1", "proba_0": 0.25, "proba_1": 0.75})
    return row


def label(request_id: str, when: datetime, value: Any) -> dict[str, Any]:
    return {"request_id": request_id, "timestamp": when, "label": value}


def test_round_trip_joins_labels_and_keeps_plain_dtypes(tmp_path: Path, settings: Settings) -> None:
    writer = CaptureWriter(tmp_path, numerical=settings.data.features.numerical)
    rows = [prediction(settings, f"r{i}", DAY + timedelta(minutes=i)) for i in range(5)]
    writer.add(PREDICTIONS, rows)
    writer.add(LABELS, [label("r1", DAY + timedelta(hours=1), 0), label("r2", DAY, 1.0)])
    writer.add(LABELS, [label("r1", DAY + timedelta(hours=2), "1")])  # a correction: latest wins
    writer.close()

    frame = read_window(tmp_path, settings)

    target = settings.data.target
    assert frame["request_id"].tolist() == [f"r{i}" for i in range(5)]
    assert frame[target].tolist() == [None, "1", "1", None, None]
    assert frame["AGEP"].dtype == "float64"
    assert frame["SCHL"].dtype == object and frame[PREDICTION].dtype == object
    assert frame["proba_1"].tolist() == [0.75] * 5
    assert str(frame["timestamp"].dt.tz) == "UTC"


def test_window_filters_by_time_and_date_partition(tmp_path: Path, settings: Settings) -> None:
    days = [DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)]
    frame = to_frame(PREDICTIONS, [prediction(settings, f"d{i}", d) for i, d in enumerate(days)])
    written = write_frame(tmp_path, PREDICTIONS, frame)

    assert sorted(Path(p).parent.name for p in written) == [
        "date=2026-02-28",
        "date=2026-03-01",
        "date=2026-03-02",
    ]
    window = read_window(tmp_path, settings, since=DAY, until=DAY + timedelta(hours=1))
    assert window["request_id"].tolist() == ["d1"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_corrupt_file_is_skipped_with_a_warning_naming_it(
    tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    write_frame(tmp_path, PREDICTIONS, to_frame(PREDICTIONS, [prediction(settings, "good", DAY)]))
    corrupt = tmp_path / PREDICTIONS / "date=2026-03-01" / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")

    with caplog.at_level(logging.WARNING, logger="monitoring.capture"):
        frame = read_window(tmp_path, settings)

    assert frame["request_id"].tolist() == ["good"]
    assert str(corrupt) in caplog.text


def test_full_queue_drops_rows_counts_them_and_never_blocks(
    tmp_path: Path, settings: Settings
) -> None:
    dropped: list[int] = []
    queued: list[int] = []
    writer = CaptureWriter(
        tmp_path,
        queue_rows=3,
        on_dropped=lambda kind, n: dropped.append(n),
        on_queue=queued.append,
    )  # not started: nothing drains the queue

    accepted = writer.add(PREDICTIONS, [prediction(settings, f"q{i}", DAY) for i in range(5)])

    assert accepted == 3
    assert dropped == [2] and writer.dropped == 2
    assert queued[-1] == 3
    writer.close()
    assert sorted(read_kind(tmp_path, PREDICTIONS)["request_id"]) == ["q0", "q1", "q2"]
    assert writer.pending == 0


def test_background_thread_flushes_on_size(tmp_path: Path, settings: Settings) -> None:
    written: list[int] = []
    writer = CaptureWriter(
        tmp_path, flush_rows=4, flush_seconds=3600, on_written=lambda kind, n: written.append(n)
    ).start()
    writer.add(PREDICTIONS, [prediction(settings, f"s{i}", DAY) for i in range(4)])
    deadline = time.monotonic() + 30
    while not written and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting for the writer thread, not asserting on time
    assert written == [4]
    writer.close()
    assert len(read_kind(tmp_path, PREDICTIONS)) == 4


def test_an_fsspec_url_works_like_a_folder(settings: Settings) -> None:
    url = "memory://capture-test"
    writer = CaptureWriter(url)
    writer.add(PREDICTIONS, [prediction(settings, "m1", DAY)])
    writer.add(LABELS, [label("m1", DAY, 1)])
    writer.close()

    frame = read_window(url, settings)

    assert frame["request_id"].tolist() == ["m1"]
    assert frame[settings.data.target].tolist() == ["1"]


def test_empty_log_reads_as_an_empty_frame_with_the_columns(
    tmp_path: Path, settings: Settings
) -> None:
    frame = read_window(tmp_path, settings)
    assert frame.empty
    assert {"request_id", "timestamp", PREDICTION, settings.data.target} <= set(frame.columns)
    assert isinstance(frame, pd.DataFrame)
