"""Write-ahead frames: scored batches as Arrow record batches, read back as the JSON-line
format read them; torn and damaged frames set aside; old JSON-line segments recovered."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from monitoring.capture import LABELS, PREDICTIONS, CaptureWriter, ScoredBatch, read_kind
from monitoring.capture.frames import (
    ARROW_MIN_ROWS,
    BATCH,
    JSON,
    MAGIC,
    Frames,
    frame,
    frames_table,
    scored_batch_arrays,
    scored_batch_by_column,
)
from monitoring.capture.wal import scored_line
from pipeline.schema import INTERVAL_COLUMNS, PREDICTION
from pipeline.settings import PROJECT_ROOT, Settings
from tests.monitoring.capture.conftest import DAY, SEGMENTS, scored_batch

JSON_SEGMENTS = Path(__file__).parent / "data" / "json-segments"


@pytest.fixture(params=[0, 10**9], ids=["arrow-batches", "json-lines"])
def arrow_min_rows(request: pytest.FixtureRequest) -> int:
    """Both frame kinds a writer appends: record batches, and JSON lines (small calls)."""
    return int(request.param)


def writer(tmp_path: Path, settings: Settings, arrow_min_rows: int = 0) -> CaptureWriter:
    numerical = settings.data.features.numerical
    return CaptureWriter(
        tmp_path / "log",
        segments=tmp_path / SEGMENTS,
        numerical=numerical,
        arrow_min_rows=arrow_min_rows,
    )


def segment_file(tmp_path: Path, kind: str = PREDICTIONS) -> Path:
    (found,) = (tmp_path / SEGMENTS).glob(f"{kind}-*.wal")
    return found


def test_the_few_call_way_and_the_column_by_column_way_build_the_same_batch(
    settings: Settings,
) -> None:
    numerical = frozenset(settings.data.features.numerical)
    batch = scored_batch(settings, "j", [20.0, 21.5, 30.0])
    batch.features[1]["SCHL"] = None
    batch.features[2]["AGEP"] = None

    fast, general = scored_batch_arrays(batch, numerical), scored_batch_by_column(batch, numerical)

    assert fast.equals(general), (fast.schema, general.schema)
    assert fast["request_id"].to_pylist() == ["j0", "j1", "j2"]
    assert fast["AGEP"].to_pylist() == [20.0, 21.5, None]
    assert fast["SCHL"].to_pylist() == ["1", None, "1"]
    assert fast["proba_1"].to_pylist() == [0.75] * 3
    assert fast["timestamp"].to_pylist() == [DAY] * 3


def test_a_batch_of_columns_is_stored_as_a_batch_of_rows(
    tmp_path: Path, settings: Settings
) -> None:
    """A column-wise input parser hands its columns over as they are."""
    rows = scored_batch(settings, "c", [20.0, 21.0])
    names = list(rows.features[0])
    columns = {name: [row[name] for row in rows.features] for name in names}
    columns["AGEP"] = np.array(columns["AGEP"])
    as_columns = ScoredBatch(
        DAY, "m", "3", ["c0", "c1"], columns, ["1", "1"], rows.probabilities, rows.proba_columns
    )
    numerical = frozenset(settings.data.features.numerical)

    assert scored_batch_arrays(as_columns, numerical).equals(scored_batch_arrays(rows, numerical))
    live = writer(tmp_path, settings)
    assert live.add(PREDICTIONS, as_columns.head(1)) == 1
    live.close()
    assert read_kind(tmp_path / "log", PREDICTIONS)["request_id"].tolist() == ["c0"]


def test_a_regressors_batch_holds_numbers(settings: Settings) -> None:
    batch = scored_batch(settings, "r", [20.0, 21.0])
    regressor = ScoredBatch(
        DAY, "m", "3", batch.request_ids, batch.features, [1.5, 2.5],
        np.array([[1.0, 2.0], [2.0, 3.0]]), INTERVAL_COLUMNS,
    )  # fmt: skip
    numerical = frozenset(settings.data.features.numerical)

    fast = scored_batch_arrays(regressor, numerical)

    assert fast.equals(scored_batch_by_column(regressor, numerical))
    assert fast.schema.field(PREDICTION).type == pa.float64()
    assert fast[PREDICTION].to_pylist() == [1.5, 2.5]
    assert fast[INTERVAL_COLUMNS[1]].to_pylist() == [2.0, 3.0]


def test_both_formats_store_the_same_log_even_for_rows_of_other_types(
    tmp_path: Path, settings: Settings, arrow_min_rows: int
) -> None:
    """The same batches, one segment as JSON lines (the previous format, recovered) and one
    as frames: a category sent as a number in a later batch changes the segment's schema
    and is text in both, as the JSON reader stored it."""
    batches = [scored_batch(settings, p, [20.0 + i]) for i, p in enumerate("abc")]
    batches[1].features[0]["SCHL"] = 21
    batches[2].features[0]["AGEP"] = None
    old = tmp_path / "old" / SEGMENTS
    old.mkdir(parents=True)
    lines = b"".join(scored_line(batch)[1] for batch in batches)
    (old / f"predictions-{'a' * 32}.jsonl").write_bytes(lines)
    recovered = writer(tmp_path / "old", settings).start()
    recovered.close()
    live = writer(tmp_path / "new", settings, arrow_min_rows)
    for batch in batches:
        live.add(PREDICTIONS, batch)
    live.close()

    got = read_kind(tmp_path / "new" / "log", PREDICTIONS)
    want = read_kind(tmp_path / "old" / "log", PREDICTIONS)

    pd.testing.assert_frame_equal(got, want)
    assert got["SCHL"].tolist() == ["1", "21", "1"]
    assert got["AGEP"].tolist()[:2] == [20.0, 21.0] and np.isnan(got["AGEP"].tolist()[2])


def test_json_segments_of_the_previous_version_are_recovered_after_an_upgrade(
    tmp_path: Path, settings: Settings, arrow_min_rows: int
) -> None:
    """Segments main at 751bbfa left (data/json-segments/README.md says how), beside a
    segment of the new format that a killed process left: all recovered, each once."""
    segments = tmp_path / SEGMENTS
    shutil.copytree(JSON_SEGMENTS, segments, ignore=shutil.ignore_patterns("*.md"))
    dead = writer(tmp_path, settings, arrow_min_rows)
    dead.add(PREDICTIONS, scored_batch(settings, "new", [40.0]))
    dead._open[PREDICTIONS].release()  # type: ignore[union-attr]  # as a killed process

    recovering = writer(tmp_path, settings, arrow_min_rows).start()
    recovering.close()

    frame = read_kind(tmp_path / "log", PREDICTIONS).sort_values("request_id")
    old = [f"old{i}-{j}" for i in range(3) for j in range(2)]
    assert frame["request_id"].tolist() == ["new0", *old]
    assert frame["SCHL"].tolist() == ["1"] + ["21", None] * 3
    assert frame["proba_1"].tolist() == [0.75] + [0.8, 0.4] * 3
    assert read_kind(tmp_path / "log", LABELS)["request_id"].tolist() == ["old0-0"]
    assert list(segments.iterdir()) == [], "nothing set aside, nothing left"
    again = writer(tmp_path, settings, arrow_min_rows).start()
    again.close()
    assert len(read_kind(tmp_path / "log", PREDICTIONS)) == 7


def test_a_torn_last_frame_is_kept_aside_and_the_rest_stored(
    tmp_path: Path, settings: Settings, arrow_min_rows: int, caplog: pytest.LogCaptureFixture
) -> None:
    live = writer(tmp_path, settings, arrow_min_rows)
    for prefix in ("a", "b"):
        live.add(PREDICTIONS, scored_batch(settings, prefix, [20.0, 21.0]))
    segment = segment_file(tmp_path)
    answered = segment.stat().st_size
    live.add(PREDICTIONS, scored_batch(settings, "c", [22.0]))
    data = segment.read_bytes()
    live._open[PREDICTIONS].release()  # type: ignore[union-attr]  # the process died...
    cut = answered + (len(data) - answered) // 2
    segment.write_bytes(data[:cut])  # ...inside the third append

    with caplog.at_level("WARNING", logger="monitoring.capture"):
        writer(tmp_path, settings, arrow_min_rows).start().close()

    assert read_kind(tmp_path / "log", PREDICTIONS)["request_id"].tolist() == [
        "a0", "a1", "b0", "b1"
    ]  # fmt: skip
    kept = tmp_path / SEGMENTS / segment.name.replace("predictions-", "rejected-")
    assert kept.read_bytes() == data[answered:cut]
    assert f"torn write of {cut - answered} byte(s)" in caplog.text
    assert [p.name for p in (tmp_path / SEGMENTS).iterdir()] == [kept.name]


def test_a_damaged_frame_is_kept_aside_and_the_frames_after_it_are_stored(
    tmp_path: Path, settings: Settings, arrow_min_rows: int
) -> None:
    live = writer(tmp_path, settings, arrow_min_rows)
    live.add(PREDICTIONS, scored_batch(settings, "a", [20.0]))
    segment = segment_file(tmp_path)
    start = segment.stat().st_size
    live.add(PREDICTIONS, scored_batch(settings, "b", [21.0]))
    end = segment.stat().st_size
    live.add(PREDICTIONS, scored_batch(settings, "c", [22.0]))
    live._open[PREDICTIONS].release()  # type: ignore[union-attr]
    data = bytearray(segment.read_bytes())
    data[end - 20] ^= 0xFF  # a flipped bit inside the second batch's payload
    segment.write_bytes(bytes(data))

    writer(tmp_path, settings, arrow_min_rows).start().close()

    assert read_kind(tmp_path / "log", PREDICTIONS)["request_id"].tolist() == ["a0", "c0"]
    kept = tmp_path / SEGMENTS / segment.name.replace("predictions-", "rejected-")
    assert kept.read_bytes() == bytes(data[start:end])


def test_a_file_that_is_not_a_segment_is_kept_aside_whole(
    tmp_path: Path, settings: Settings
) -> None:
    segments = tmp_path / SEGMENTS
    segments.mkdir()
    alien = segments / f"labels-{'f' * 32}.wal"
    alien.write_bytes(b"PAR1 not a write-ahead segment")

    writer(tmp_path, settings).start().close()

    assert read_kind(tmp_path / "log", LABELS).empty
    assert (segments / f"rejected-{'f' * 32}.wal").read_bytes() == b"PAR1 not a write-ahead segment"
    assert not alien.exists()


def test_frames_read_without_a_schema_are_set_aside() -> None:
    batch = pa.record_batch({"request_id": ["x"]})
    payload = batch.serialize()

    rejected: list[bytes] = []
    table, torn = frames_table(frame(BATCH, payload), frozenset(), rejected)

    assert table.num_rows == 0 and torn == 0
    assert rejected == [frame(BATCH, payload)]


# A child that appends 3-row batches under a real file-size limit (a full disk, no root
# needed) and prints which were accepted, then dies without compacting.
FULL_SEGMENT_DISK = textwrap.dedent(
    """
    import json, os, resource, signal, sys
    from datetime import UTC, datetime
    import numpy as np
    from monitoring.capture import PREDICTIONS, CaptureWriter, ScoredBatch

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (6_000, 6_000))
    writer = CaptureWriter(
        sys.argv[1], segments=sys.argv[2], numerical=["AGEP"], arrow_min_rows=int(sys.argv[3])
    )
    accepted = []
    for i in range(30):
        batch = ScoredBatch(
            timestamp=datetime.now(UTC), model_name="m", model_version="1",
            request_ids=[f"d{i}-{j}" for j in range(3)],
            features=[{"AGEP": 30.0 + j, "SCHL": "21" * 40} for j in range(3)],
            predictions=["1", "0", "1"], probabilities=np.array([[0.2, 0.8]] * 3),
            proba_columns=["proba_0", "proba_1"],
        )
        if writer.add(PREDICTIONS, batch) == 3:
            accepted += batch.request_ids
    print(json.dumps({"accepted": accepted, "dropped": writer.dropped, "healthy": writer.healthy}))
    os._exit(0)
    """
)


def test_a_full_segment_disk_drops_and_counts_rows_and_every_accepted_one_is_recovered(
    tmp_path: Path, settings: Settings, arrow_min_rows: int
) -> None:
    segments = tmp_path / SEGMENTS
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            FULL_SEGMENT_DISK,
            str(tmp_path / "log"),
            str(segments),
            str(arrow_min_rows),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dropped"] > 0 and not report["healthy"], "the limit was hit"
    assert 0 < len(report["accepted"]) < 90

    writer(tmp_path, settings, arrow_min_rows).start().close()  # no limit here: the next start

    stored = read_kind(tmp_path / "log", PREDICTIONS)["request_id"].tolist()
    assert sorted(stored) == sorted(report["accepted"]), "each accepted row once, no other"
    kept = sorted(segments.glob("rejected-*.wal"))
    assert kept and all(p.stat().st_size > 0 for p in kept), "torn tails kept aside"
    assert sorted(segments.iterdir()) == kept


def test_small_and_large_calls_in_one_segment_are_stored_in_order_as_all_batches_are(
    tmp_path: Path, settings: Settings
) -> None:
    """As served: JSON-line frames for calls under ARROW_MIN_ROWS, batches from it on."""
    calls = [
        scored_batch(settings, "s", [20.0]),
        scored_batch(settings, "l", [30.0 + i for i in range(ARROW_MIN_ROWS)]),
        scored_batch(settings, "t", [21.0, 22.0]),
    ]
    calls[2].features[1]["SCHL"] = None
    stored, kinds = {}, {}
    for name, threshold in {"served": ARROW_MIN_ROWS, "batches": 0}.items():
        live = writer(tmp_path / name, settings, threshold)
        for batch in calls:
            live.add(PREDICTIONS, batch)
        runs = Frames(segment_file(tmp_path / name).read_bytes()[len(MAGIC) :]).runs
        kinds[name] = ["json" if key == JSON else "batches" for key, _ in runs]
        live.close()
        stored[name] = read_kind(tmp_path / name / "log", PREDICTIONS)

    assert kinds == {"served": ["json", "batches", "json"], "batches": ["batches"]}

    pd.testing.assert_frame_equal(stored["served"], stored["batches"])
    ids = ["s0", *(f"l{i}" for i in range(ARROW_MIN_ROWS)), "t0", "t1"]
    assert stored["served"]["request_id"].tolist() == ids
    assert stored["served"]["SCHL"].tolist()[-2:] == ["1", None]
