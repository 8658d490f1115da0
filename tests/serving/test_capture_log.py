"""The capture log's own contract: complete files, bounded queue, one frame back per window."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from monitoring.capture import (
    LABELS,
    PREDICTIONS,
    CaptureWriter,
    ScoredBatch,
    lines_table,
    read_kind,
    read_window,
    records_line,
    scored_line,
    scored_lines_table,
    storable_frame,
    write_frame,
)
from pipeline.schema import PREDICTION
from pipeline.settings import Settings, load_settings

DAY = datetime(2026, 3, 1, 12, tzinfo=UTC)
SEGMENTS = "segments"  # beside the log in these tests; a local folder of its own in params


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


def test_files_keep_timestamp_statistics_and_encode_repeated_values_by_dictionary(
    tmp_path: Path, settings: Settings
) -> None:
    """The window's filter skips row groups by the timestamp's statistics; request ids and
    probabilities, nearly all distinct, are not dictionary-encoded (it only costs time)."""
    writer = CaptureWriter(
        tmp_path, segments=tmp_path / SEGMENTS, numerical=settings.data.features.numerical
    )
    writer.add(PREDICTIONS, scored_batch(settings, "s", [20.0, 21.0, 22.0]))
    writer.close()
    (file,) = tmp_path.rglob("*.parquet")

    group = pq.ParquetFile(file).metadata.row_group(0)
    chunks = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    stamps = chunks["timestamp"].statistics
    assert stamps is not None and stamps.has_min_max
    assert chunks["request_id"].statistics is None
    dictionary = {name for name, chunk in chunks.items() if "RLE_DICTIONARY" in chunk.encodings}
    assert {"SCHL", "AGEP", "model_version", PREDICTION} <= dictionary
    assert not dictionary & {"request_id", "timestamp", "proba_0", "proba_1"}


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


def test_full_queue_drops_rows_counts_them_and_never_blocks(
    tmp_path: Path, settings: Settings
) -> None:
    dropped: list[int] = []
    queued: list[int] = []
    writer = CaptureWriter(
        tmp_path,
        segments=tmp_path / SEGMENTS,
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
        tmp_path,
        segments=tmp_path / SEGMENTS,
        flush_rows=4,
        flush_seconds=3600,
        on_written=lambda kind, n: written.append(n),
    ).start()
    writer.add(PREDICTIONS, [prediction(settings, f"s{i}", DAY) for i in range(4)])
    deadline = time.monotonic() + 30
    while not written and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting for the writer thread, not asserting on time
    assert written == [4]
    writer.close()
    assert len(read_kind(tmp_path, PREDICTIONS)) == 4


def test_an_fsspec_url_works_like_a_folder(tmp_path: Path, settings: Settings) -> None:
    url = "memory://capture-test"
    writer = CaptureWriter(url, segments=tmp_path / SEGMENTS)  # segments stay on local disk
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


def scored_batch(settings: Settings, prefix: str, ages: list[float]) -> ScoredBatch:
    """A batch as the service hands it over: its request rows and the model's arrays."""
    features = settings.data.features
    rows = []
    for age in ages:
        row: dict[str, Any] = {column: age for column in features.numerical}
        row.update({column: "1" for column in features.categorical})
        rows.append(row)
    return ScoredBatch(
        timestamp=DAY,
        model_name="m",
        model_version="3",
        request_ids=[f"{prefix}{i}" for i in range(len(ages))],
        features=rows,
        predictions=["1"] * len(ages),
        probabilities=np.array([[0.25, 0.75]] * len(ages)),
        proba_columns=["proba_0", "proba_1"],
    )


def test_scored_batches_and_records_write_the_same_log(tmp_path: Path, settings: Settings) -> None:
    numerical = settings.data.features.numerical
    first, second = scored_batch(settings, "f", [20.0, 21.0]), scored_batch(settings, "g", [22.0])
    first.features[1]["SCHL"] = None  # a missing category stays None, not "nan" or "None"
    records = []
    for batch in (first, second):
        for i, rid in enumerate(batch.request_ids):
            records.append(
                {
                    "request_id": rid,
                    "timestamp": DAY,
                    "model_name": "m",
                    "model_version": "3",
                    **batch.features[i],
                    PREDICTION: "1",
                    "proba_0": 0.25,
                    "proba_1": 0.75,
                }
            )
    as_batches, as_records = tmp_path / "batches", tmp_path / "records"
    mixed = CaptureWriter(as_batches, segments=tmp_path / "s1", numerical=numerical)
    mixed.add(PREDICTIONS, first)
    mixed.add(PREDICTIONS, second)
    mixed.add(PREDICTIONS, [{**records[0], "request_id": "r0"}])  # records in the same flush
    mixed.close()
    plain = CaptureWriter(as_records, segments=tmp_path / "s2", numerical=numerical)
    plain.add(PREDICTIONS, [*records, {**records[0], "request_id": "r0"}])
    plain.close()

    got, want = read_kind(as_batches, PREDICTIONS), read_kind(as_records, PREDICTIONS)

    pd.testing.assert_frame_equal(got, want)
    assert got["request_id"].tolist() == ["f0", "f1", "g0", "r0"]
    assert got["SCHL"].tolist()[1] is None
    assert got["AGEP"].tolist() == [20.0, 21.0, 22.0, 20.0]
    assert got["AGEP"].dtype == "float64" and got["SCHL"].dtype == object
    assert len(list(as_batches.rglob("*.parquet"))) == 1  # one flush, one file


def test_arrows_json_reader_and_the_line_by_line_way_read_scored_lines_alike(
    settings: Settings,
) -> None:
    """Compaction reads the service's lines with Arrow's JSON reader; any other line is
    decoded one by one. Both must give the same table for the service's lines."""
    numerical = frozenset(settings.data.features.numerical)
    batches = [scored_batch(settings, "j", [20.0, 21.5]), scored_batch(settings, "k", [30.0])]
    batches[0].features[1]["SCHL"] = None
    batches[1].features[0]["AGEP"] = None
    lines = [scored_line(batch) for batch in batches]
    columns = lines[0][0]
    data = b"".join(line for _, line in lines)

    fast = scored_lines_table(data, columns, numerical)
    general = lines_table(data, columns, numerical)

    assert fast.equals(general), (fast.schema, general.schema)
    assert fast["request_id"].to_pylist() == ["j0", "j1", "k0"]
    assert fast["AGEP"].to_pylist() == [20.0, 21.5, None]
    assert fast["SCHL"].to_pylist() == ["1", None, "1"]
    assert fast["proba_1"].to_pylist() == [0.75] * 3
    assert fast["timestamp"].to_pylist() == [DAY] * 3


def test_a_category_sent_as_a_number_is_stored_as_its_text(
    tmp_path: Path, settings: Settings
) -> None:
    """Not the service's rows (they are validated strings): Arrow's reader refuses the
    number, and the line-by-line way stores the code as text."""
    writer = CaptureWriter(
        tmp_path, segments=tmp_path / SEGMENTS, numerical=settings.data.features.numerical
    )
    batch = scored_batch(settings, "n", [25.0, 26.0])
    batch.features[0]["SCHL"] = 21
    writer.add(PREDICTIONS, batch)
    writer.close()

    frame = read_kind(tmp_path, PREDICTIONS)
    assert frame["SCHL"].tolist() == ["21", "1"]
    assert frame["AGEP"].tolist() == [25.0, 26.0]


def test_malformed_segment_lines_are_kept_aside_and_hold_nothing_back(
    tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Lines no append writes (valid JSON of another shape, a batch whose lengths disagree,
    a record whose timestamp is text) are left out of the log and kept in the segments
    folder; the segment's other rows are stored, and nothing is retried forever."""
    segments = tmp_path / SEGMENTS
    segments.mkdir()
    numerical = frozenset(settings.data.features.numerical)
    first, second = (scored_line(scored_batch(settings, p, [20.0]))[1] for p in ("a", "b"))
    uneven = first.replace(b'"request_id":["a0"]', b'"request_id":["a0","a1"]')
    assert uneven != first
    predictions = [b'{"x":1}\n', first, b"[1,2]\n", uneven, second]
    labeled = records_line(LABELS, [label("a0", DAY, 1)], numerical)[1]
    text_time = b'{"records":[{"request_id":"b0","timestamp":"noon","label":"1"}]}\n'
    leftovers = {"predictions": predictions, "labels": [text_time, labeled]}
    for kind, lines in leftovers.items():
        (segments / f"{kind}-{kind[0] * 32}.jsonl").write_bytes(b"".join(lines))

    writer = CaptureWriter(tmp_path / "log", segments=segments, numerical=numerical)
    with caplog.at_level(logging.WARNING, logger="monitoring.capture"):
        writer.start()  # recovers both leftovers
    writer.close()

    assert writer.healthy and writer.pending == 0
    assert read_kind(tmp_path / "log", PREDICTIONS)["request_id"].tolist() == ["a0", "b0"]
    assert read_kind(tmp_path / "log", LABELS)["request_id"].tolist() == ["a0"]
    kept = segments / f"rejected-{'p' * 32}.jsonl"
    assert kept.read_bytes() == predictions[0] + predictions[2] + predictions[3]
    assert (segments / f"rejected-{'l' * 32}.jsonl").read_bytes() == text_time
    assert "3 malformed line(s)" in caplog.text and str(kept) in caplog.text
    assert sorted(p.name for p in segments.iterdir()) == [
        f"rejected-{'l' * 32}.jsonl",
        f"rejected-{'p' * 32}.jsonl",
    ]
    again = CaptureWriter(tmp_path / "log", segments=segments, numerical=numerical).start()
    again.close()  # the kept lines are not a segment: nothing is recovered twice
    assert len(read_kind(tmp_path / "log", PREDICTIONS)) == 2


def test_a_record_with_text_in_a_numerical_column_is_refused_before_it_is_appended(
    tmp_path: Path, settings: Settings
) -> None:
    writer = CaptureWriter(
        tmp_path, segments=tmp_path / SEGMENTS, numerical=settings.data.features.numerical
    )
    bad = {**prediction(settings, "x", DAY), "AGEP": "forty"}

    with pytest.raises(TypeError, match="AGEP must be a number"):
        writer.add(PREDICTIONS, [bad])

    assert writer.pending == 0
    assert not list((tmp_path / SEGMENTS).glob("*.jsonl"))
    writer.close()


def test_a_batch_beyond_the_queue_is_cut_and_the_rest_counted(
    tmp_path: Path, settings: Settings
) -> None:
    dropped: list[int] = []
    writer = CaptureWriter(
        tmp_path,
        segments=tmp_path / SEGMENTS,
        queue_rows=3,
        on_dropped=lambda k, n: dropped.append(n),
    )
    batch = scored_batch(settings, "b", [30.0, 31.0, 32.0, 33.0, 34.0])

    assert writer.add(PREDICTIONS, batch) == 3
    assert writer.add(PREDICTIONS, batch) == 0  # full: all five dropped, nothing blocks

    assert dropped == [2, 5] and writer.dropped == 7
    writer.close()
    frame = read_kind(tmp_path, PREDICTIONS)
    assert frame["request_id"].tolist() == ["b0", "b1", "b2"]
    assert frame["AGEP"].tolist() == [30.0, 31.0, 32.0]
    assert writer.pending == 0


def test_an_unwritable_path_keeps_the_rows_fails_health_and_writes_them_once_it_can(
    tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the capture folder should be")
    dropped: list[int] = []
    writer = CaptureWriter(
        blocker, segments=tmp_path / SEGMENTS, on_dropped=lambda kind, n: dropped.append(n)
    ).start()
    assert not writer.healthy, "a path that cannot be written is seen at start"
    batch = scored_batch(settings, "u", [40.0] * 4)
    writer.add(PREDICTIONS, batch)

    with caplog.at_level(logging.ERROR, logger="monitoring.capture"):
        writer.flush()

    assert dropped == [] and writer.pending == 4, "kept in the segment, not dropped"
    assert "are kept and retried" in caplog.text
    assert writer.add(PREDICTIONS, scored_batch(settings, "v", [41.0])) == 1
    assert not list(tmp_path.rglob("*.tmp"))

    blocker.unlink()  # the path comes back
    writer.close()

    assert writer.healthy and writer.pending == 0
    frame = read_kind(blocker, PREDICTIONS)
    assert sorted(frame["request_id"]) == ["u0", "u1", "u2", "u3", "v0"]
    assert not list((tmp_path / SEGMENTS).iterdir())


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


def test_health_comes_back_when_the_path_does_even_with_nothing_to_write(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the capture folder should be")
    writer = CaptureWriter(blocker, segments=tmp_path / SEGMENTS).start()
    assert not writer.healthy
    blocker.unlink()
    writer.flush()
    assert writer.healthy
    writer.close()
