"""Shared data for the drift tests: a reference set and scored production years.

The model is the project's factory, trained on a sample of the 75% training split of
2015 with fewer boosting iterations to stay quick; the reference set is the other 25%
with its predictions, and the model's permutation importance on it, as the evaluate
stage writes them (two shuffles per feature instead of params.yaml's, to stay quick).
Each production year is scored by that model and joined with its labels. Built once per
session: the tests only read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from monitoring.scenarios import inject
from pipeline.labels import normalize_labels
from pipeline.metrics import permutation_importance
from pipeline.model import build_model, predict_frame
from pipeline.schema import coerce_features
from pipeline.settings import PROJECT_ROOT, Settings, load_settings

RAW = PROJECT_ROOT / "data" / "raw"
YEARS = (2016, 2017, 2018)
TRAIN_ROWS = 20_000  # of the 51,588 training rows: the same quality, a third of the time


@dataclass(frozen=True)
class DriftData:
    settings: Settings
    model: Any
    reference: pd.DataFrame
    years: dict[int, pd.DataFrame]
    importance: dict[str, float]

    def year(self, year: int) -> pd.DataFrame:
        return self.years[year].copy()


def score(model: Any, frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Features (plain dtypes), id and label if present, plus the model's predictions."""
    data = settings.data
    features = coerce_features(frame, data)
    out = pd.concat([frame[[data.id]], features, predict_frame(model, features)], axis=1)
    if data.target in frame:
        out[data.target] = normalize_labels(frame[data.target])
    return out.reset_index(drop=True)


@pytest.fixture(scope="session")
def drift_data() -> DriftData:
    settings = load_settings()
    data = settings.data
    raw = pd.read_parquet(RAW / "reference_2015.parquet")
    labels = normalize_labels(raw[data.target])
    train, test = train_test_split(
        raw, test_size=data.split.test_size, stratify=labels, random_state=data.seed
    )
    quick = settings.train.model_copy(
        update={
            "hist_gradient_boosting": settings.train.hist_gradient_boosting.model_copy(
                update={"max_iter": 60}
            )
        }
    )
    train = train.sample(TRAIN_ROWS, random_state=data.seed)
    model = build_model(data.features, quick, data.seed)
    model.fit(coerce_features(train, data), normalize_labels(train[data.target]))
    production = pd.read_parquet(RAW / "production_2016_2018.parquet").drop(
        columns=["prediction", "predicted_probability"]
    )
    production = production.merge(
        pd.read_parquet(RAW / "production_2016_2018_labels.parquet"), on=data.id
    )
    years = {y: score(model, production[production["year"] == y], settings) for y in YEARS}
    reference = score(model, test, settings)
    importance = permutation_importance(
        model,
        reference[data.features.all],
        reference[data.target],
        [str(c) for c in model.classes_],
        settings.promote.metric,
        2,
        data.seed,
    )
    return DriftData(settings, model, reference, years, importance)


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
    import yaml

    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["data"]["path"] = str(RAW / "reference_2015.parquet")
    params["drift"] = {**params.get("drift", {}), **drift}
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path
