"""The shifts bench/detection.py injects into a window: pure functions on a frame (here, in
testbeds, so that tests/monitoring/test_shifts.py can check them).

Each returns a new frame and leaves its input alone; what each keeps is what makes it a
test of one thing (tests/monitoring/test_shifts.py checks it):

- :func:`mean_shift` moves one numeric column's mean by ``sigmas`` reference standard
  deviations and nothing else;
- :func:`scale` stretches one numeric column around its window mean (mean kept);
- :func:`frequency` raises one category's share by ``points`` percentage points, the rows
  it takes drawn at random from the other categories;
- :func:`flip_pairing` reverses the rank pairing of one column with every other: the row
  holding its k-th smallest value gets its k-th largest. Every column's marginal is kept
  exactly (the column's values are only permuted), its correlations change sign;
- :func:`flip_labels` swaps two classes on a subpopulation (concept drift: inputs kept).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def mean_shift(frame: pd.DataFrame, column: str, sigmas: float, sigma: float) -> pd.DataFrame:
    """``column`` plus ``sigmas`` × ``sigma`` (the reference's standard deviation)."""
    out = frame.copy()
    out[column] = frame[column].astype(float) + sigmas * sigma
    return out


def scale(frame: pd.DataFrame, column: str, factor: float) -> pd.DataFrame:
    """``column`` stretched ``factor`` times around its window mean."""
    out = frame.copy()
    values = frame[column].astype(float)
    out[column] = values.mean() + factor * (values - values.mean())
    return out


def frequency(
    frame: pd.DataFrame, column: str, category: str, points: float, rng: np.random.Generator
) -> pd.DataFrame:
    """``category``'s share of ``column`` raised by ``points`` percentage points."""
    values = frame[column].astype(object)
    others = np.flatnonzero((values != category).to_numpy())
    moved = round(points / 100 * len(frame))
    if moved > len(others):
        raise ValueError(
            f"{column}: {moved} rows would move to {category!r} but only {len(others)} hold "
            "another category"
        )
    out = frame.copy()
    changed = values.to_numpy().copy()
    changed[rng.choice(others, size=moved, replace=False)] = category
    out[column] = pd.Series(changed, index=frame.index).astype(frame[column].dtype)
    return out


def flip_pairing(frame: pd.DataFrame, column: str, rng: np.random.Generator) -> pd.DataFrame:
    """``column``'s values re-paired so that its rank order is reversed (ties broken at
    random). A categorical column is ordered by its values as numbers (ordinal codes)."""
    values = frame[column]
    order_key = pd.to_numeric(values.astype(object), errors="raise").to_numpy(dtype=float)
    if np.isnan(order_key).any():
        raise ValueError(f"{column}: missing values have no rank to reverse")
    # Random tie-break: sort by (value, random), so equal values get ranks in random order.
    ranks = np.empty(len(values), dtype=int)
    ranks[np.lexsort((rng.random(len(values)), order_key))] = np.arange(len(values))
    ascending = values.to_numpy()[np.argsort(order_key, kind="stable")]
    out = frame.copy()
    out[column] = pd.Series(ascending[::-1][ranks], index=frame.index).astype(values.dtype)
    return out


def flip_labels(
    frame: pd.DataFrame, target: str, where: pd.Series, classes: tuple[str, str]
) -> pd.DataFrame:
    """The two ``classes`` swapped in ``target`` on the rows ``where`` is true."""
    labels = frame[target]
    unknown = set(labels.dropna().unique()) - set(classes)
    if unknown:
        raise ValueError(f"{target}: labels {sorted(map(str, unknown))} are not in {classes}")
    out = frame.copy()
    first, second = classes
    swapped = labels.map({first: second, second: first})
    out.loc[where, target] = swapped[where]
    return out
