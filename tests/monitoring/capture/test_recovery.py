"""The write-ahead segments with real processes: a killed writer loses no appended row,
recovery stores each row exactly once, a live writer's segment is left alone, a failed
write leaves no temporary file."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from monitoring.capture import LABELS, PREDICTIONS, CaptureWriter, read_kind
from monitoring.capture.frames import ARROW_MIN_ROWS, MAGIC
from pipeline.labels import MissingLabel
from pipeline.settings import PROJECT_ROOT

# A child process that appends a few served batches (one per answered request) and then
# does what the test asks: die by SIGKILL, die half way through compacting, or stay alive.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from datetime import UTC, datetime
    import numpy as np
    from monitoring.capture import (
        LABELS, PREDICTIONS, CaptureWriter, ScoredBatch, storable_table, write_table
    )

    log, segments, prefix, batches, then, arrow_min_rows = sys.argv[1:7]
    writer = CaptureWriter(
        log, segments=segments, numerical=["AGEP"], flush_seconds=3600,
        arrow_min_rows=int(arrow_min_rows),
    )
    for i in range(int(batches)):
        batch = ScoredBatch(
            timestamp=datetime.now(UTC), model_name="m", model_version="1",
            request_ids=[f"{prefix}{i}-{j}" for j in range(3)],
            features=[{"AGEP": 30.0 + j, "SCHL": "21"} for j in range(3)],
            predictions=["1", "0", "1"], probabilities=np.array([[0.2, 0.8]] * 3),
            proba_columns=["proba_0", "proba_1"],
        )
        writer.add(PREDICTIONS, batch)
    writer.add(LABELS, [{"request_id": f"{prefix}0-0", "timestamp": datetime.now(UTC), "label": 1}])
    if then == "compact-then-die":  # the Parquet is written, the segment not yet deleted
        segment = writer._open[PREDICTIONS]
        table = storable_table(segment.read(frozenset(["AGEP"])))
        write_table(log, PREDICTIONS, table, name=segment.id)
    print("appended", flush=True)
    if then == "live":
        time.sleep(600)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def child(
    tmp_path: Path, prefix: str, batches: int, then: str, arrow_min_rows: int = ARROW_MIN_ROWS
) -> subprocess.Popen[str]:
    """A child appending 3-row batches: as JSON-line frames by default (fewer rows than
    ``ARROW_MIN_ROWS``), as record batches with ``arrow_min_rows=0``."""
    args = [str(tmp_path / "log"), str(tmp_path / "segments"), prefix, str(batches), then]
    args.append(str(arrow_min_rows))
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *args], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
    )


def killed_child(
    tmp_path: Path, prefix: str, batches: int, then: str = "die", arrow_min_rows: int = 0
) -> None:
    process = child(tmp_path, prefix, batches, then, arrow_min_rows)
    assert process.stdout is not None and process.stdout.readline().strip() == "appended"
    assert process.wait(60) == -signal.SIGKILL


def writer(tmp_path: Path) -> CaptureWriter:
    return CaptureWriter(tmp_path / "log", segments=tmp_path / "segments", numerical=["AGEP"])


def ids(tmp_path: Path, kind: str = PREDICTIONS) -> list[str]:
    frame = read_kind(tmp_path / "log", kind)
    return sorted(frame["request_id"]) if not frame.empty else []


def expected(prefix: str, batches: int) -> list[str]:
    return sorted(f"{prefix}{i}-{j}" for i in range(batches) for j in range(3))


@pytest.mark.parametrize("arrow_min_rows", [0, ARROW_MIN_ROWS], ids=["arrow", "json-lines"])
def test_rows_of_a_killed_process_are_recovered_exactly_once_by_two_new_workers(
    tmp_path: Path, arrow_min_rows: int
) -> None:
    killed_child(tmp_path, "k", 4, arrow_min_rows=arrow_min_rows)
    assert len(list((tmp_path / "segments").glob("*.wal"))) == 2  # predictions, labels
    first, second = writer(tmp_path), writer(tmp_path)

    first.start()
    second.start()  # finds nothing left: the first took and deleted every segment
    first.close()
    second.close()

    assert ids(tmp_path) == expected("k", 4)
    assert ids(tmp_path, LABELS) == ["k0-0"]
    assert list((tmp_path / "segments").iterdir()) == []


def test_a_crash_between_parquet_and_deletion_stores_each_row_once(tmp_path: Path) -> None:
    killed_child(tmp_path, "c", 3, then="compact-then-die")
    assert ids(tmp_path) == expected("c", 3), "the Parquet was written before the crash"
    assert list((tmp_path / "segments").glob("predictions-*.wal")), "and the segment kept"

    recovering = writer(tmp_path).start()
    recovering.close()

    assert ids(tmp_path) == expected("c", 3)  # not twice
    assert ids(tmp_path, LABELS) == ["c0-0"]
    assert list((tmp_path / "segments").iterdir()) == []


def test_a_live_writers_segment_is_left_to_it(tmp_path: Path) -> None:
    process = child(tmp_path, "l", 2, then="live")
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "appended"
        other = writer(tmp_path).start()
        assert other.recover() == 0
        other.close()
        assert ids(tmp_path) == []
        assert len(list((tmp_path / "segments").glob("*.wal"))) == 2
    finally:
        process.kill()
        process.wait(60)

    assert writer(tmp_path).recover() == 2 * 3 + 1  # the owner died: now they are leftovers
    assert ids(tmp_path) == expected("l", 2)


@pytest.mark.parametrize("arrow_min_rows", [0, ARROW_MIN_ROWS], ids=["arrow", "json-lines"])
def test_a_torn_last_append_loses_only_the_request_it_never_answered(
    tmp_path: Path, arrow_min_rows: int
) -> None:
    killed_child(tmp_path, "t", 3, arrow_min_rows=arrow_min_rows)
    (segment,) = (tmp_path / "segments").glob("predictions-*.wal")
    data = segment.read_bytes()
    segment.write_bytes(data[:-40])  # the process died inside the third append

    writer(tmp_path).recover()

    assert ids(tmp_path) == expected("t", 2)


FULL_DISK = textwrap.dedent(
    """
    import resource, signal, sys
    import pandas as pd
    from datetime import UTC, datetime
    from monitoring.capture import PREDICTIONS, storable_frame, write_frame

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    limit = 20_000
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    rows = [{"request_id": f"r{i:06d}" * 8, "timestamp": datetime.now(UTC)} for i in range(5000)]
    frame = storable_frame(PREDICTIONS, pd.DataFrame.from_records(rows))
    for name in (None, "segment-id"):
        try:
            write_frame(sys.argv[1], PREDICTIONS, frame, name=name)
        except OSError as error:
            print(type(error).__name__)
    """
)


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A real file-size limit on a real process stands for a full disk (no root needed)."""
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tmp_path / "log")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["OSError", "OSError"]
    assert list((tmp_path / "log").rglob("*.tmp")) == []
    assert list((tmp_path / "log").rglob("*.parquet")) == []


def test_an_append_is_in_the_file_when_add_returns(tmp_path: Path) -> None:
    """What a crash keeps: appended bytes are in the file as soon as ``add`` returns."""
    live = writer(tmp_path)
    live.add(LABELS, [{"request_id": "x", "timestamp": "2026-03-01T00:00Z", "label": 0}])
    (segment,) = (tmp_path / "segments").glob("labels-*.wal")
    assert segment.stat().st_size > len(MAGIC)  # the record, not only the file's header
    live.close()
    assert ids(tmp_path, LABELS) == ["x"]


def test_a_missing_label_is_refused_before_anything_is_appended(tmp_path: Path) -> None:
    live = writer(tmp_path)
    nan = {"request_id": "x", "timestamp": "2026-03-01T00:00Z", "label": float("nan")}

    with pytest.raises(MissingLabel):
        live.add(LABELS, [nan])

    assert live.pending == 0
    live.close()
    assert ids(tmp_path, LABELS) == []
    assert not list(tmp_path.rglob("*.wal"))
