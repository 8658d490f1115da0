"""What the capture tests share: the project's settings, a day, rows as the service makes them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
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
