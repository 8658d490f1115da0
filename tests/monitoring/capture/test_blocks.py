"""Feature blocks: a served batch written as the compiled scoring path holds it (numbers as
one float64 block, categories as int32 codes) is stored as its rows would be; codes no
category has are set aside; segments of the framed format before blocks are recovered."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest

from monitoring.capture import (
    LABELS,
    PREDICTIONS,
    CaptureWriter,
    FeatureBlocks,
    ScoredBatch,
    read_kind,
)
from monitoring.capture.frames import CATEGORIES, scored_batch_arrays
from pipeline.settings import Settings
from tests.monitoring.capture.conftest import SEGMENTS, scored_batch

WAL_SEGMENTS = Path(__file__).parent / "data" / "wal-segments"
KNOWN = ["1", "16", "21"]  # every categorical column's categories in these tests


def writer(tmp_path: Path, settings: Settings) -> CaptureWriter:
    return CaptureWriter(
        tmp_path / "log",
        segments=tmp_path / SEGMENTS,
        numerical=settings.data.features.numerical,
        arrow_min_rows=0,  # every call a record batch, whatever its rows
    )


def with_blocks(batch: ScoredBatch, settings: Settings) -> ScoredBatch:
    """``batch`` with the blocks an encoder of :data:`KNOWN` makes of its rows: codes in the
    compiled path's order (reversed from the rows', as a ColumnTransformer may order them)."""
    features = settings.data.features
    rows: Any = batch.features
    categorical = tuple(reversed(features.categorical))
    coded = {v: i for i, v in enumerate(KNOWN)} | {None: len(KNOWN)}
    codes = np.array([[coded.get(r[c], -1) for r in rows] for c in categorical], np.int32)
    numbers = np.array([[r[c] for r in rows] for c in features.numerical], np.float64)
    dictionary = orjson.dumps(dict.fromkeys(categorical, KNOWN))
    blocks = FeatureBlocks(tuple(features.numerical), numbers, categorical, codes, dictionary)
    return dataclasses.replace(batch, blocks=blocks)


def stored(tmp_path: Path, settings: Settings, batches: list[ScoredBatch]) -> pd.DataFrame:
    live = writer(tmp_path, settings)
    for batch in batches:
        live.add(PREDICTIONS, batch)
    live.close()
    return read_kind(tmp_path / "log", PREDICTIONS)


def batches(settings: Settings) -> list[ScoredBatch]:
    made = [scored_batch(settings, p, [20.0 + i, 30.0, 31.0]) for i, p in enumerate("abc")]
    made[0].features[1]["SCHL"] = None  # missing: the code past the categories
    made[0].features[2]["AGEP"] = None  # missing: NaN in the number block
    made[1].features[0]["MAR"] = "16"
    made[2].features[2]["SCHL"] = "not a category the model knows"  # written from the rows
    return made


def test_a_batch_of_blocks_is_stored_as_its_rows(tmp_path: Path, settings: Settings) -> None:
    plain = batches(settings)
    coded = [with_blocks(batch, settings) for batch in plain]

    got = stored(tmp_path / "blocks", settings, coded)
    want = stored(tmp_path / "rows", settings, plain)

    pd.testing.assert_frame_equal(got, want)
    assert got["SCHL"].tolist()[:3] == ["1", None, "1"]
    assert got["SCHL"].tolist()[-1] == "not a category the model knows"
    assert got["MAR"].tolist()[3] == "16"
    assert np.isnan(got["AGEP"].tolist()[2])


def test_a_batch_of_blocks_holds_codes_and_its_categories(settings: Settings) -> None:
    numerical = frozenset(settings.data.features.numerical)
    batch = with_blocks(batches(settings)[0], settings)

    record = scored_batch_arrays(batch, numerical)

    assert record.schema.field("SCHL").type == pa.int32()
    assert record["SCHL"].to_pylist() == [0, len(KNOWN), 0]
    assert orjson.loads(record.schema.metadata[CATEGORIES])["SCHL"] == KNOWN
    unknown = with_blocks(batches(settings)[2], settings)
    assert scored_batch_arrays(unknown, numerical).schema.field("SCHL").type == pa.string()
    no_strings = dataclasses.replace(
        batch, blocks=dataclasses.replace(batch.blocks, dictionary=b"")
    )  # type: ignore[arg-type]
    assert scored_batch_arrays(no_strings, numerical).schema.field("SCHL").type == pa.string()


@pytest.mark.parametrize("code", [len(KNOWN) + 1, -5])
def test_codes_no_category_has_are_set_aside_and_the_rest_stored(
    tmp_path: Path, settings: Settings, code: int
) -> None:
    good = with_blocks(scored_batch(settings, "a", [20.0]), settings)
    live = writer(tmp_path, settings)
    live.add(PREDICTIONS, good)
    live.close()
    segments = tmp_path / SEGMENTS
    dead = writer(tmp_path, settings)
    dead.add(PREDICTIONS, with_blocks(scored_batch(settings, "c", [22.0]), settings))
    record = scored_batch_arrays(good, frozenset(settings.data.features.numerical))
    codes = record["SCHL"].to_numpy().copy()
    codes[0] = code
    broken = record.set_column(record.schema.get_field_index("SCHL"), "SCHL", pa.array(codes))
    segment = dead._open[PREDICTIONS]
    assert segment is not None
    segment.append(segment.columns, broken, 1)  # type: ignore[arg-type]  # a damaged batch
    segment.release()  # as a killed process

    writer(tmp_path, settings).start().close()

    assert sorted(read_kind(tmp_path / "log", PREDICTIONS)["request_id"]) == ["a0", "c0"]
    assert len(list(segments.glob("rejected-*.wal"))) == 1


def test_wal_segments_of_the_format_before_blocks_are_recovered_after_an_upgrade(
    tmp_path: Path, settings: Settings
) -> None:
    """Segments main at cb0fb04 left (data/wal-segments/README.md says how): a record
    batch of strings, a JSON frame and a label, all recovered once."""
    segments = tmp_path / SEGMENTS
    shutil.copytree(WAL_SEGMENTS, segments, ignore=shutil.ignore_patterns("*.md"))

    writer(tmp_path, settings).start().close()

    frame = read_kind(tmp_path / "log", PREDICTIONS)
    assert sorted(frame["request_id"]) == sorted(
        [f"wal0-{j}" for j in range(40)] + ["wal1-0", "wal1-1"]
    )
    first = frame.set_index("request_id").loc[[f"wal0-{j}" for j in range(6)]]
    assert first["SCHL"].tolist() == [None, "21", "21", None, "21", "21"]
    ages = first["AGEP"].tolist()
    assert np.isnan(ages[0]) and ages[1:5] == [21, 22, 23, 24] and np.isnan(ages[5])
    assert read_kind(tmp_path / "log", LABELS)["request_id"].tolist() == ["wal0-1"]
    assert list(segments.iterdir()) == [], "nothing set aside, nothing left"
    writer(tmp_path, settings).start().close()
    assert len(read_kind(tmp_path / "log", PREDICTIONS)) == 42
