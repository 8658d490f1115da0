"""One spelling per class label, everywhere: settings, schema, service, capture log, drift job.

``1``, ``1.0``, ``"1"`` and ``np.int64(1)`` are the same class, so every place that
compares or stores labels first turns them into the same string.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


class MissingLabel(ValueError):
    """A label that is NaN: no class at all."""


def normalize_label(value: Any) -> str:
    """One spelling per class: ``1``, ``1.0``, ``"1"`` and ``np.int64(1)`` are all ``"1"``."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            raise MissingLabel("a label is missing (NaN)")
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value)


def normalize_labels(values: pd.Series) -> pd.Series:
    """Vectorised :func:`normalize_label` for a whole column; missing values stay missing."""
    present = values.notna()
    if pd.api.types.is_bool_dtype(values):
        out = values.astype(object).where(~present, values.astype(str))
    elif pd.api.types.is_numeric_dtype(values):
        numbers = values.astype("float64")
        integral = present & (numbers == np.floor(numbers))
        out = pd.Series(None, index=values.index, dtype=object)
        out[integral] = numbers[integral].astype("int64").astype(str)
        rest = present & ~integral
        out[rest] = numbers[rest].map(repr)
    else:
        out = values.astype(object).where(~present, values.astype(str))
    return out.astype(object)
