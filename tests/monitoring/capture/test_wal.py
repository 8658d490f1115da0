"""Write-ahead lines: scored batches and records as JSON lines, read back alike by both readers;
malformed lines set aside."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from monitoring.capture import (
    LABELS,
    PREDICTIONS,
    CaptureWriter,
    lines_table,
    read_kind,
    records_line,
    scored_line,
    scored_lines_table,
)
from pipeline.schema import PREDICTION
from pipeline.settings import Settings
from tests.monitoring.capture.conftest import DAY, SEGMENTS, label, prediction, scored_batch


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
    assert not list((tmp_path / SEGMENTS).glob("*.wal"))
    writer.close()


def test_a_timestamp_past_2262_is_set_aside_and_compaction_goes_on(
    tmp_path: Path, settings: Settings
) -> None:
    """The probe's case: an int64 microsecond timestamp that overflows nanoseconds passed the
    line check and failed the segment's conversion at every retry and after every restart."""
    segments = tmp_path / SEGMENTS
    segments.mkdir()
    numerical = frozenset(settings.data.features.numerical)
    good = scored_line(scored_batch(settings, "a", [20.0]))[1]
    stamp = good.split(b'"t":', 1)[1].split(b",", 1)[0]
    far = good.replace(stamp, str(2**62).encode()).replace(b'"a0"', b'"z0"')
    assert far != good
    labeled = records_line(LABELS, [label("a0", DAY, 1)], numerical)[1]
    far_label = b'{"records":[{"request_id":"z0","timestamp":%d,"label":"1"}]}\n' % 2**62
    for kind, lines in {"predictions": [good, far], "labels": [far_label, labeled]}.items():
        (segments / f"{kind}-{kind[0] * 32}.jsonl").write_bytes(b"".join(lines))

    writer = CaptureWriter(tmp_path / "log", segments=segments, numerical=numerical).start()
    writer.close()

    assert writer.healthy and writer.pending == 0
    assert read_kind(tmp_path / "log", PREDICTIONS)["request_id"].tolist() == ["a0"]
    assert read_kind(tmp_path / "log", LABELS)["request_id"].tolist() == ["a0"]
    assert (segments / f"rejected-{'p' * 32}.jsonl").read_bytes() == far
    assert (segments / f"rejected-{'l' * 32}.jsonl").read_bytes() == far_label


def test_a_timestamp_past_2262_is_refused_at_write(tmp_path: Path, settings: Settings) -> None:
    numerical = frozenset(settings.data.features.numerical)
    with pytest.raises(ValueError, match="timestamp outside"):
        records_line(LABELS, [label("x", "2300-01-01T00:00Z", 1)], numerical)  # type: ignore[arg-type]
