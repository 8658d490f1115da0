"""The feature schema: which columns are features, their types, and the checks on data.

Shared by every part of the loop. The training pipeline validates raw data with it, the
service builds its input model from it, and the drift job aligns the capture log and the
reference set with it. The names of the prediction columns also live here, once.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from pipeline.labels import normalize_labels
from pipeline.settings import DataSettings

PREDICTION = "prediction"
PROBA_PREFIX = "proba_"
# Regression: the served interval's bounds (pipeline/interval.py), beside the prediction.
INTERVAL_LOWER = "interval_lower"
INTERVAL_UPPER = "interval_upper"
INTERVAL_COLUMNS = (INTERVAL_LOWER, INTERVAL_UPPER)


class SchemaError(ValueError):
    """Data does not match the schema in ``params.yaml``. The message names the column."""


def proba_column(label: str) -> str:
    """Name of the column that holds the probability of class ``label``."""
    return f"{PROBA_PREFIX}{label}"


def proba_columns(classes: Iterable[str]) -> list[str]:
    return [proba_column(c) for c in classes]


def categorical_as_str(values: pd.Series) -> pd.Series:
    """Categorical values as plain strings whatever their stored type (bool, int, category)."""
    return normalize_labels(
        values.astype(object) if isinstance(values.dtype, pd.CategoricalDtype) else values
    )


def coerce_features(frame: pd.DataFrame, data: DataSettings) -> pd.DataFrame:
    """The feature columns only, with plain dtypes: float64 numbers and object strings.

    Plain dtypes matter downstream: Evidently silently skips nullable ``Int64`` columns.
    """
    missing = [c for c in data.features.all if c not in frame.columns]
    if missing:
        raise SchemaError(f"missing feature column(s): {', '.join(missing)}")
    out = {}
    for column in data.features.numerical:
        values = frame[column]
        if values.isna().all():  # an empty column has no dtype to check (None is object)
            out[column] = pd.Series(np.nan, index=frame.index, dtype="float64")
            continue
        if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
            raise SchemaError(f"column {column!r} must be numerical, got dtype {values.dtype}")
        out[column] = values.astype("float64")
    for column in data.features.categorical:
        out[column] = categorical_as_str(frame[column])
    return pd.DataFrame(out, index=frame.index)


def numeric_target(values: pd.Series, name: str) -> pd.Series:
    """A regression target as float64: numbers only (no strings, no booleans), every value
    present and finite, and not all the same. Each failure names the column and a value."""
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce")
        bad = values[numbers.isna() & values.notna()]
        example = repr(bad.iloc[0]) if len(bad) else repr(values.dropna().iloc[0])
        raise SchemaError(
            f"target column {name!r} must be numeric for a regression task (data.task), "
            f"got dtype {values.dtype}, for example {example}"
        )
    numbers = values.astype("float64")
    missing = int(numbers.isna().sum())
    if missing:
        raise SchemaError(f"target column {name!r} has {missing} null(s)")
    infinite = numbers[~np.isfinite(numbers)]
    if len(infinite):
        raise SchemaError(
            f"target column {name!r} has {len(infinite)} infinite value(s), "
            f"for example {infinite.iloc[0]!r}"
        )
    if numbers.nunique() < 2:
        raise SchemaError(f"target column {name!r} has a single value: {numbers.iloc[0]!r}")
    return numbers


def validate(frame: pd.DataFrame, data: DataSettings, *, labeled: bool = True) -> pd.DataFrame:
    """Check a raw frame against the schema and return features (+ label) with plain dtypes.

    Each failure is a :class:`SchemaError` naming the column: an empty frame, a missing
    column, a wrong dtype, an all-null column, a value outside ``data.ranges``, a label
    outside ``data.classes``.
    """
    if frame.empty:
        raise SchemaError("the data is empty: no rows")
    features = coerce_features(frame, data)
    for column in data.features.all:
        if features[column].isna().all():
            raise SchemaError(f"column {column!r} is entirely null")
    for column, (low, high) in data.ranges.items():
        values = features[column].dropna()
        outside = values[(values < low) | (values > high)]
        if not outside.empty:
            raise SchemaError(
                f"column {column!r} has {len(outside)} value(s) outside [{low}, {high}], "
                f"for example {outside.iloc[0]!r}"
            )
    if not labeled:
        return features
    if data.target not in frame.columns:
        raise SchemaError(f"missing target column: {data.target}")
    target = frame[data.target]
    if data.is_regression:
        features[data.target] = numeric_target(target, data.target)
        return features
    if target.isna().any():
        raise SchemaError(f"target column {data.target!r} has {int(target.isna().sum())} null(s)")
    labels = normalize_labels(target)
    if data.classes is not None:
        unexpected = sorted(set(labels) - set(data.classes))
        if unexpected:
            raise SchemaError(
                f"target column {data.target!r} has values outside {data.classes}: {unexpected}"
            )
    if labels.nunique() < 2:
        raise SchemaError(f"target column {data.target!r} has a single class: {labels.iloc[0]!r}")
    features[data.target] = labels
    return features
