"""Reading a window back: one frame per window, time filters, labels joined (the last wins)."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow.parquet as pq
import pytest

from monitoring.capture import (
    LABELS,
    PREDICTIONS,
    CaptureWriter,
    read_window,
    read_window_sample,
    storable_frame,
    write_frame,
)
from pipeline.schema import PREDICTION
from pipeline.settings import Settings
from tests.monitoring.capture.conftest import (
    DAY,
    SEGMENTS,
    corrupt_mid_file,
    label,
    prediction,
    truncate,
)


def test_round_trip_joins_labels_and_keeps_plain_dtypes(tmp_path: Path, settings: Settings) -> None:
    writer = CaptureWriter(
        tmp_path, segments=tmp_path / SEGMENTS, numerical=settings.data.features.numerical
    )
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
    records = [prediction(settings, f"d{i}", d) for i, d in enumerate(days)]
    frame = storable_frame(PREDICTIONS, pd.DataFrame.from_records(records))
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
    good = pd.DataFrame.from_records([prediction(settings, "good", DAY)])
    write_frame(tmp_path, PREDICTIONS, storable_frame(PREDICTIONS, good))
    corrupt = tmp_path / PREDICTIONS / "date=2026-03-01" / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")

    with caplog.at_level(logging.WARNING, logger="monitoring.capture"):
        frame = read_window(tmp_path, settings)

    assert frame["request_id"].tolist() == ["good"]
    assert str(corrupt) in caplog.text


def _predictions(path: str | Path, settings: Settings, prefix: str, rows: int) -> Path:
    """One file of ``rows`` predictions served at :data:`DAY`; its path."""
    records = [prediction(settings, f"{prefix}{i}", DAY) for i in range(rows)]
    frame = storable_frame(PREDICTIONS, pd.DataFrame.from_records(records))
    (written,) = write_frame(path, PREDICTIONS, frame)
    return Path(written)


def test_a_file_corrupt_mid_file_is_quarantined_and_the_rest_of_the_window_judged(
    tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Footer valid, a data page garbage: the file is moved under quarantine/ with its
    partition path, named with its error, and none of its rows counted, not even those
    of its readable row groups; the next read does not meet it again."""
    for n in range(5):
        _predictions(tmp_path, settings, f"good{n}-", 20)
    bad = _predictions(tmp_path, settings, "bad-", 40)
    assert corrupt_mid_file(bad) > 0
    labels = [label("good0-1", DAY, 1), label("bad-1", DAY, 0)]
    write_frame(tmp_path, LABELS, storable_frame(LABELS, pd.DataFrame.from_records(labels)))

    with caplog.at_level(logging.WARNING, logger="monitoring.capture"):
        sample = read_window_sample(tmp_path, settings, rows=1000, seed=0)

    moved = tmp_path / "quarantine" / PREDICTIONS / "date=2026-03-01" / bad.name
    assert sample.totals.rows == 100 and len(sample.current) == 100
    assert not sample.current["request_id"].str.startswith("bad-").any()
    assert sample.totals.labeled == 1
    (skipped,) = sample.skipped
    assert skipped.as_dict() == {"path": str(bad), "error": skipped.error, "moved_to": str(moved)}
    assert "thrift" in skipped.error
    assert str(bad) in caplog.text and str(moved) in caplog.text
    assert not bad.exists() and moved.exists()
    assert pq.ParquetFile(moved).read_row_group(0).num_rows == 10, "its rows are recoverable"

    again = read_window_sample(tmp_path, settings, rows=1000, seed=0)
    assert again.skipped == [] and again.totals.rows == 100


def test_a_truncated_label_file_is_quarantined_and_the_other_labels_join(
    tmp_path: Path, settings: Settings
) -> None:
    _predictions(tmp_path, settings, "r", 30)
    for name, value, ids in (("first", 1, range(10)), ("second", 0, range(10, 20))):
        rows = [label(f"r{i}", DAY, value) for i in ids]
        frame = storable_frame(LABELS, pd.DataFrame.from_records(rows))
        write_frame(tmp_path, LABELS, frame, name=name)
    cut = tmp_path / LABELS / "date=2026-03-01" / "second.parquet"
    truncate(cut)

    sample = read_window_sample(tmp_path, settings, rows=1000, seed=0)

    moved = tmp_path / "quarantine" / LABELS / "date=2026-03-01" / "second.parquet"
    assert [s.moved_to for s in sample.skipped] == [str(moved)]
    assert sample.skipped[0].path == str(cut) and moved.exists() and not cut.exists()
    assert sample.totals.rows == 30 and sample.totals.labeled == 10
    assert sample.totals.labels == {"1"}
    assert read_window_sample(tmp_path, settings, rows=1000, seed=0).skipped == []


def test_an_unreadable_file_on_an_fsspec_url_is_moved_by_that_filesystem(
    tmp_path: Path, settings: Settings
) -> None:
    url = "memory://capture-quarantine"
    _predictions(url, settings, "m", 5)
    bad = _predictions(url, settings, "x", 5)
    fs = fsspec.filesystem("memory")
    fs.pipe(str(bad), fs.cat(str(bad))[:100])  # the footer is gone

    sample = read_window_sample(url, settings, rows=1000, seed=0)

    (skipped,) = sample.skipped
    partition = f"{PREDICTIONS}/date=2026-03-01"
    assert skipped.moved_to == f"/capture-quarantine/quarantine/{partition}/{bad.name}"
    assert fs.exists(skipped.moved_to) and not fs.exists(str(bad))
    assert sample.totals.rows == 5
    fs.rm("/capture-quarantine", recursive=True)


def test_empty_log_reads_as_an_empty_frame_with_the_columns(
    tmp_path: Path, settings: Settings
) -> None:
    frame = read_window(tmp_path, settings)
    assert frame.empty
    assert {"request_id", "timestamp", PREDICTION, settings.data.target} <= set(frame.columns)
    assert isinstance(frame, pd.DataFrame)


def test_the_last_label_of_a_request_id_wins(tmp_path: Path, settings: Settings) -> None:
    """The documented rule: later labels are corrections, also within one request."""
    writer = CaptureWriter(tmp_path, segments=tmp_path / SEGMENTS)
    writer.add(PREDICTIONS, [prediction(settings, f"w{i}", DAY) for i in range(40)])
    same_time = DAY + timedelta(minutes=5)
    writer.add(LABELS, [label(f"w{i}", same_time, i % 2) for i in range(40)])
    writer.add(LABELS, [label(f"w{i}", same_time, 1 - i % 2) for i in range(40)])  # same stamp
    writer.add(LABELS, [label("w0", DAY + timedelta(minutes=1), 0)])  # older: loses
    writer.close()

    frame = read_window(tmp_path, settings).set_index("request_id")[settings.data.target]

    assert frame[[f"w{i}" for i in range(40)]].tolist() == [str(1 - i % 2) for i in range(40)]


def test_a_label_sent_twice_for_one_request_id_the_later_wins_in_full_and_sampled_reads(
    tmp_path: Path, settings: Settings
) -> None:
    """One join for both reads: the later label (by timestamp; at one timestamp, the one
    stored later) is the request's label in :func:`read_window` and in the sample."""
    writer = CaptureWriter(tmp_path, segments=tmp_path / SEGMENTS)
    writer.add(PREDICTIONS, [prediction(settings, f"r{i}", DAY) for i in range(6)])
    writer.add(LABELS, [label("r0", DAY + timedelta(minutes=2), 1)])
    writer.add(LABELS, [label("r0", DAY + timedelta(minutes=1), 1)])  # older, stored later
    writer.add(LABELS, [label("r0", DAY + timedelta(minutes=3), 0)])  # the latest: wins
    writer.add(LABELS, [label("r1", DAY + timedelta(minutes=1), 0)])
    writer.add(LABELS, [label("r1", DAY + timedelta(minutes=1), 1)])  # same stamp, later
    writer.close()
    target = settings.data.target
    expected = {"r0": "0", "r1": "1", "r2": None, "r3": None, "r4": None, "r5": None}

    full = read_window(tmp_path, settings).set_index("request_id")[target]
    sample = read_window_sample(tmp_path, settings, rows=100, seed=0)

    assert full.to_dict() == expected
    assert sample.current.set_index("request_id")[target].to_dict() == expected
    assert sample.labeled.set_index("request_id")[target].to_dict() == {"r0": "0", "r1": "1"}
    assert sample.totals.labeled == 2 and sample.totals.labels == {"0", "1"}
