"""Shared data for the drift tests: a reference set and scored production years.

The model is the project's factory, trained on a sample of the 75% training split of
2015 with fewer boosting iterations to stay quick; the reference set is the other 25%
with its predictions, and the model's permutation importance on it, as the evaluate
stage writes them (two shuffles per feature instead of params.yaml's, to stay quick).
Each production year is scored by that model and joined with its labels. Built once per
session by ``testbeds.drift_data`` (which the false-alarm benchmark uses too): the tests
only read them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlstack.scenarios import inject
from pipeline.settings import load_settings
from testbeds import params
from testbeds.drift_data import RAW, YEARS, DriftData, build, score

__all__ = ["YEARS", "DriftData", "score", "covariate_shift", "concept_flip", "write_params"]

TRAIN_ROWS = 20_000  # of the 51,588 training rows: the same quality, a third of the time


@pytest.fixture(scope="session")
def drift_data() -> DriftData:
    return build(train_rows=TRAIN_ROWS, max_iter=60, importance_repeats=2)


def covariate_shift(frame: pd.DataFrame) -> pd.DataFrame:
    """The demo's ``covariate_shift`` scenario (params.yaml) injected into ``frame``."""
    settings = load_settings()
    shifted, _ = inject(frame, None, settings.scenarios["covariate_shift"], [])
    return shifted


def concept_flip(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """The demo's ``concept_flip`` scenario: labels flipped for a subgroup, inputs untouched."""
    settings = load_settings()
    classes = settings.data.classes or sorted(frame[target].unique())
    flipped, labels = inject(frame, frame[target], settings.scenarios["concept_flip"], classes)
    assert labels is not None
    flipped[target] = labels
    return flipped


def write_params(folder: Path, **drift: Any) -> Path:
    """A params.yaml in ``folder`` (the project root for that run) with ``drift`` overrides."""
    return params.write_params(
        folder, data={"path": str(RAW / "reference_2015.parquet")}, drift=drift
    )
