"""The Parquet store: complete files, encodings and statistics that fit the log, any fsspec URL."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from monitoring.capture import (
    LABELS,
    PREDICTIONS,
    CaptureWriter,
    read_window,
)
from pipeline.schema import PREDICTION
from pipeline.settings import Settings
from tests.monitoring.capture.conftest import DAY, SEGMENTS, label, prediction, scored_batch


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


def test_an_fsspec_url_works_like_a_folder(tmp_path: Path, settings: Settings) -> None:
    url = "memory://capture-test"
    writer = CaptureWriter(url, segments=tmp_path / SEGMENTS)  # segments stay on local disk
    writer.add(PREDICTIONS, [prediction(settings, "m1", DAY)])
    writer.add(LABELS, [label("m1", DAY, 1)])
    writer.close()

    frame = read_window(url, settings)

    assert frame["request_id"].tolist() == ["m1"]
    assert frame[settings.data.target].tolist() == ["1"]
