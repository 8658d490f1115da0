"""The writer: bounded pending rows, flushes on size; an unwritable path drops nothing."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from monitoring.capture import (
    PREDICTIONS,
    CaptureWriter,
    read_kind,
)
from pipeline.settings import Settings
from tests.monitoring.capture.conftest import DAY, SEGMENTS, prediction, scored_batch


def test_rows_beyond_max_pending_are_dropped_counted_and_never_block(
    tmp_path: Path, settings: Settings
) -> None:
    dropped: list[int] = []
    pending: list[int] = []
    writer = CaptureWriter(
        tmp_path,
        segments=tmp_path / SEGMENTS,
        max_pending_rows=3,
        on_dropped=lambda kind, n: dropped.append(n),
        on_pending=pending.append,
    )  # not started: nothing compacts the pending rows

    accepted = writer.add(PREDICTIONS, [prediction(settings, f"q{i}", DAY) for i in range(5)])

    assert accepted == 3
    assert dropped == [2] and writer.dropped == 2
    assert pending[-1] == 3
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


def test_a_batch_beyond_max_pending_is_cut_and_the_rest_counted(
    tmp_path: Path, settings: Settings
) -> None:
    dropped: list[int] = []
    writer = CaptureWriter(
        tmp_path,
        segments=tmp_path / SEGMENTS,
        max_pending_rows=3,
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


def test_unwritable_segments_are_seen_at_start_and_health_does_not_flap(
    tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The probe's case: a segments folder that cannot be written was found only at the
    first request, and the next flush, probing the capture path alone, reported healthy
    again: ``/readyz`` flapped while every row was dropped."""
    blocker = tmp_path / "segments-not-a-folder"
    blocker.write_text("a file where the segments folder should be")
    dropped: list[int] = []
    with caplog.at_level(logging.ERROR, logger="monitoring.capture"):
        writer = CaptureWriter(
            tmp_path / "capture", segments=blocker, on_dropped=lambda kind, n: dropped.append(n)
        ).start()
    assert not writer.healthy, "seen at start, before any request"
    assert str(blocker) in caplog.text and "write-ahead segments" in caplog.text
    assert writer.add(PREDICTIONS, scored_batch(settings, "w", [40.0, 41.0])) == 0
    assert dropped == [2], "a row that cannot be written ahead is counted as dropped"
    for _ in range(3):
        writer.flush()
        assert not writer.healthy, "the capture path is fine, the segments are not"
    blocker.unlink()  # the folder can be made again
    writer.flush()
    assert writer.healthy
    assert writer.add(PREDICTIONS, scored_batch(settings, "x", [42.0])) == 1
    writer.close()
    assert read_kind(tmp_path / "capture", PREDICTIONS)["request_id"].tolist() == ["x0"]
