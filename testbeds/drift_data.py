"""A reference set and scored production years, as the drift job sees them: one builder for
the drift tests (tests/monitoring/conftest.py) and the false-alarm benchmark.

The model is the project's factory, trained on the 75% training split of 2015 (or a
sample of it, with fewer boosting iterations, to stay quick); the reference set is the
other 25% with its predictions, and the model's permutation importance on it, as the
evaluate stage writes them. Each production year (2016-2018, stable against 2015) is
scored by that model and joined with its labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from pipeline.labels import normalize_labels
from pipeline.metrics import permutation_importance
from pipeline.model import build_model, predict_frame
from pipeline.schema import coerce_features
from pipeline.settings import PROJECT_ROOT, Settings, load_settings

RAW = PROJECT_ROOT / "data" / "raw"
YEARS = (2016, 2017, 2018)


@dataclass(frozen=True)
class DriftData:
    settings: Settings
    model: Any
    reference: pd.DataFrame
    years: dict[int, pd.DataFrame]
    importance: dict[str, float]
    inputs: pd.DataFrame  # the training rows' id and features, as the evaluate stage writes them

    def year(self, year: int) -> pd.DataFrame:
        return self.years[year].copy()

    def production(self) -> pd.DataFrame:
        """Every production year, one frame."""
        return pd.concat([self.years[y] for y in YEARS], ignore_index=True)


def score(model: Any, frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Features (plain dtypes), id and label if present, plus the model's predictions."""
    data = settings.data
    features = coerce_features(frame, data)
    out = pd.concat([frame[[data.id]], features, predict_frame(model, features)], axis=1)
    if data.target in frame:
        out[data.target] = normalize_labels(frame[data.target])
    return out.reset_index(drop=True)


def build(
    train_rows: int | None, max_iter: int | None, importance_repeats: int | None
) -> DriftData:
    """The data, from ``params.yaml`` with the three quick overrides (None: params.yaml's)."""
    from sklearn.model_selection import train_test_split

    settings = load_settings()
    data = settings.data
    raw = pd.read_parquet(RAW / "reference_2015.parquet")
    labels = normalize_labels(raw[data.target])
    train, test = train_test_split(
        raw, test_size=data.split.test_size, stratify=labels, random_state=data.seed
    )
    if train_rows is not None:
        train = train.sample(train_rows, random_state=data.seed)
    train_settings = settings.train
    if max_iter is not None:
        boosting = train_settings.hist_gradient_boosting.model_copy(update={"max_iter": max_iter})
        train_settings = train_settings.model_copy(update={"hist_gradient_boosting": boosting})
    model = build_model(data.features, train_settings, data.seed)
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
        settings.promote.metric,
        importance_repeats or settings.evaluate.importance_repeats,
        data.seed,
    )
    inputs = pd.concat([train[[data.id]], coerce_features(train, data)], axis=1)
    return DriftData(settings, model, reference, years, importance, inputs.reset_index(drop=True))
