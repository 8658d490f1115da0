"""Column drift thresholds calibrated on the reference, at the window's size.

Evidently's defaults judge every column by one fixed cut (0.1 of a normed Wasserstein or
Jensen-Shannon distance), whatever the column and the window's size: a column that moves
a lot between stretches of the reference period, or a small window's sampling noise,
reaches it with no drift at all, and a real shift below it on a large window is missed.
Here each column's cut is measured instead, as NannyML calibrates its thresholds on
reference chunks:

1. ``chunks`` stretches of the reference (contiguous rows, in its order, at seeded random
   starts) of the window's size are each compared with the rest of the reference by the
   very distance Evidently reports for the column (:func:`null_distances`): how far the
   distance goes when nothing drifted. Contiguous stretches carry the reference's own
   drift over its period when its rows are in time order, and are a random sample when
   they are not.
2. A gamma distribution fitted to those distances (method of moments) gives the tail far
   beyond the chunks drawn: the threshold is its ``1 - alpha / k`` quantile, ``k`` the
   columns judged. That is Bonferroni, Holm's first step: a stable window flags at least
   one column with probability at most ``alpha``, and every column keeps one fixed,
   readable threshold (Holm's later steps only add power once a column has already been
   flagged; Benjamini-Hochberg bounds the share of false flags among flags, not the
   false alarms an operator is woken by).
3. A window larger or smaller than the stretches drawn is judged by the distances scaled
   by ``sqrt((1/n + 1/N) / (1/m + 1/(N-m)))`` (the sampling noise of a distance between
   ``n`` and ``N`` rows against ``m`` and ``N-m``), so one calibration serves a bucket of
   window sizes (:func:`monitoring.calibration_cache.size_bucket`), and a window as large as
   the reference, which no stretch of it can be, is judged too.

A threshold is never below ``drift.calibration.min_distance``: on a large window the
noise is so small that a change nobody would act on (the project's 2016-2018 years move
ANC's shares by a Jensen-Shannon distance of 0.025-0.042) is far beyond it. The p-value a
column reports is the fitted tail beyond its distance: the noise's verdict alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from monitoring.calibration_cache import cached, digest, size_bucket
from pipeline.settings import Settings

WASSERSTEIN, JENSEN_SHANNON = "wasserstein", "jensenshannon"
# Evidently judges a numerical column with this few distinct values as a categorical one.
FEW_VALUES = 5
# A p-value below this is reported as this (the fitted tail means nothing further out).
MIN_P_VALUE = 1e-12


@dataclass(frozen=True)
class Null:
    """A distance under no drift: a gamma fit at subsets of ``rows`` of ``reference_rows``."""

    shape: float
    scale: float
    rows: int
    reference_rows: int

    def factor(self, window_rows: int) -> float:
        """How much noisier a distance on ``window_rows`` rows is than on the subsets."""
        n, m, total = window_rows, self.rows, self.reference_rows
        return math.sqrt((1 / n + 1 / total) / (1 / m + 1 / (total - m)))

    def threshold(self, window_rows: int, level: float) -> float:
        """The distance a stable window of that size exceeds with probability ``level``."""
        tail = float(stats.gamma.isf(level, self.shape, scale=self.scale))
        return tail * self.factor(window_rows)

    def p_value(self, window_rows: int, score: float) -> float:
        scaled = score / self.factor(window_rows)
        return float(stats.gamma.sf(scaled, self.shape, scale=self.scale))


@dataclass(frozen=True)
class ColumnNull:
    """A column's distance under no drift, measured two ways: on stretches of the
    reference in its order, and on random subsets of it. The verdict takes the wider."""

    method: str
    stretches: Null
    subsets: Null

    def threshold(self, window_rows: int, level: float) -> float:
        return max(n.threshold(window_rows, level) for n in (self.stretches, self.subsets))

    def p_value(self, window_rows: int, score: float) -> float:
        found = max(n.p_value(window_rows, score) for n in (self.stretches, self.subsets))
        return max(found, MIN_P_VALUE)


@dataclass(frozen=True)
class Calibrated:
    """What the drift report is run with, and what the summary reports per column."""

    methods: dict[str, str]
    thresholds: dict[str, float]
    nulls: dict[str, ColumnNull]
    level: float
    window_rows: int

    def p_value(self, column: str, score: float) -> float | None:
        null = self.nulls.get(column)
        return None if null is None else null.p_value(self.window_rows, score)


def calibrated_columns(settings: Settings, compared: list[str]) -> list[str]:
    """The columns judged by a calibrated threshold: all of them unless calibration is off
    or ``params.yaml`` names a method or threshold (for all columns, or for that one)."""
    drift = settings.drift
    if not drift.calibration.enabled or drift.method is not None or drift.threshold is not None:
        return []
    named = {c for c, s in drift.columns.items() if s.method is not None or s.threshold is not None}
    return [c for c in compared if c not in named]


def method_for(values: pd.Series, numerical: bool) -> str:
    """Evidently's default distance for the column above 1,000 reference rows."""
    if numerical and values.nunique() > FEW_VALUES:
        return WASSERSTEIN
    return JENSEN_SHANNON


def _codes(values: pd.Series, numerical: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each row's value as an index into the sorted distinct values (-1: missing)."""
    if numerical:
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        present = ~np.isnan(numbers)
        distinct, inverse = np.unique(numbers[present], return_inverse=True)
        codes = np.full(len(numbers), -1, dtype=np.int64)
        codes[present] = inverse
        return codes, distinct
    labels, uniques = pd.factorize(values)
    return labels.astype(np.int64), np.arange(len(uniques), dtype="float64")


def _distance(method: str, chunk: np.ndarray, rest: np.ndarray, points: np.ndarray) -> float:
    """Evidently's distance between two histograms over the same sorted ``points``: the
    normed Wasserstein distance (the rest's standard deviation, floored at 0.001, as
    Evidently norms by its reference's) or the Jensen-Shannon distance over the values
    present on either side."""
    if method == JENSEN_SHANNON:
        seen = (chunk + rest) > 0
        return float(distance.jensenshannon(rest[seen], chunk[seen]))
    cdf_chunk = np.cumsum(chunk) / chunk.sum()
    cdf_rest = np.cumsum(rest) / rest.sum()
    wasserstein = float(np.sum(np.abs(cdf_chunk - cdf_rest)[:-1] * np.diff(points)))
    mean = float(np.dot(rest, points) / rest.sum())
    spread = math.sqrt(max(float(np.dot(rest, (points - mean) ** 2) / rest.sum()), 0.0))
    return wasserstein / max(spread, 0.001)


def null_distances(
    values: pd.Series, method: str, rows: int, chunks: int, seed: int, stretches: bool
) -> np.ndarray:
    """The distance between each of ``chunks`` parts of ``rows`` rows and the rest: with
    ``stretches`` contiguous rows at random starts, else random subsets."""
    codes, points = _codes(values, numerical=method == WASSERSTEIN)
    total = np.bincount(codes[codes >= 0], minlength=len(points)).astype("float64")
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(chunks):
        if stretches:
            start = int(rng.integers(0, len(codes) - rows + 1))
            part = codes[start : start + rows]
        else:
            part = codes[rng.choice(len(codes), size=rows, replace=False)]
        chunk = np.bincount(part[part >= 0], minlength=len(points)).astype("float64")
        rest = total - chunk
        if chunk.sum() == 0 or rest.sum() == 0:
            continue
        found.append(_distance(method, chunk, rest, points))
    return np.asarray(found)


def fit(distances: np.ndarray) -> tuple[float, float]:
    """A gamma distribution's shape and scale by the moments of ``distances``."""
    mean, var = float(np.mean(distances)), float(np.var(distances, ddof=1))
    if mean <= 0 or var <= 0:
        # Every stretch as far as the next (a constant column): any rise is beyond them.
        return 1.0, max(mean, 1e-9) / 1e3
    return mean**2 / var, var / mean


def part_rows(window_rows: int, reference_rows: int, stretches: bool) -> int:
    """The part size calibrated for a window: its size bucket, at most a quarter of the
    reference for stretches (fewer would all overlap: their distances would agree with
    each other more than windows do), half of it for subsets."""
    most = reference_rows // 4 if stretches else reference_rows // 2
    return max(1, min(size_bucket(window_rows), most))


def _compute(
    reference: pd.DataFrame, methods: dict[str, str], window_rows: int, chunks: int, seed: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, (column, method) in enumerate(methods.items()):
        fits = {}
        for kind, stretches in (("stretches", True), ("subsets", False)):
            rows = part_rows(window_rows, len(reference), stretches)
            found = null_distances(
                reference[column], method, rows, chunks, seed + number, stretches
            )
            if len(found) < 2:
                break
            shape, scale = fit(found)
            fits[kind] = {"shape": shape, "scale": scale, "rows": rows, "mean": float(found.mean())}
        else:
            out[column] = fits
    return out


def calibrate(
    reference: pd.DataFrame,
    window_rows: int,
    settings: Settings,
    columns: list[str],
    cache: Path | None = None,
) -> Calibrated:
    """The methods and thresholds of the ``columns`` for a window of ``window_rows``,
    calibrated on ``reference`` (cached in ``cache`` per reference and size bucket)."""
    numerical = set(settings.data.features.numerical)
    methods = {c: method_for(reference[c], c in numerical) for c in columns}
    level = settings.drift.alpha / max(len(columns), 1)
    if not columns:
        return Calibrated({}, {}, {}, level, window_rows)
    total = len(reference)
    bucket = size_bucket(window_rows)
    chunks, seed = settings.drift.calibration.chunks, settings.data.seed
    key = {
        "reference": digest(reference[columns]),
        "methods": methods,
        "bucket": bucket,
        "chunks": chunks,
        "seed": seed,
    }
    fitted = cached(
        cache, "columns", key, lambda: _compute(reference, methods, bucket, chunks, seed)
    )

    def null(fit: dict[str, Any]) -> Null:
        return Null(fit["shape"], fit["scale"], fit["rows"], total)

    nulls = {
        c: ColumnNull(methods[c], null(f["stretches"]), null(f["subsets"]))
        for c, f in fitted.items()
    }
    floor = settings.drift.calibration.min_distance
    thresholds = {c: max(n.threshold(window_rows, level), floor) for c, n in nulls.items()}
    return Calibrated({c: methods[c] for c in nulls}, thresholds, nulls, level, window_rows)
