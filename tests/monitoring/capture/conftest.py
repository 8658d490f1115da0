"""What the capture tests share: the project's settings, a day, rows as the service makes them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitoring.capture import ScoredBatch
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


def corrupt_mid_file(file: Path) -> int:
    """Garble the data pages of the last row group of a Parquet ``file``, its footer intact:
    the file is rewritten in row groups of a quarter of its rows, then the last group's
    first column chunk overwritten. Checked: the schema and the first group still read,
    the whole file does not. Returns the rows of the groups that still read."""
    table = pq.read_table(file)
    pq.write_table(table, file, row_group_size=max(table.num_rows // 4, 1))
    metadata = pq.ParquetFile(file).metadata
    last = metadata.row_group(metadata.num_row_groups - 1)
    chunk = last.column(0)
    start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    data = bytearray(file.read_bytes())
    data[start : start + chunk.total_compressed_size] = b"\xff" * chunk.total_compressed_size
    file.write_bytes(bytes(data))
    assert pq.read_schema(file).names == table.column_names, "the footer still reads"
    assert pq.ParquetFile(file).read_row_group(0).num_rows > 0, "so do the first pages"
    with pytest.raises(OSError):
        pq.read_table(file)
    return table.num_rows - last.num_rows


def truncate(file: Path) -> None:
    """Cut a Parquet ``file`` in half: its footer is gone (a copy that stopped half way)."""
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(pa.ArrowInvalid):
        pq.read_schema(file)
