"""Multivariate drift by a domain classifier: can a model tell current rows from reference rows?

A per-column test sees each feature's distribution alone, so a change in how features go
together (two columns whose correlation flips while each keeps its values) passes every
one of them. A classifier trained to tell reference rows (label 0) from current rows
(label 1) sees it: its cross-validated ROC AUC is 0.5 when the two are alike and rises
towards 1 as they part. This is NannyML's domain classifier, judged the way NannyML
judges it, by a band of standard deviations around the value on reference chunks:

1. The classifier is scikit-learn's ``HistGradientBoostingClassifier``, small (few
   iterations and leaves), with native categorical splits on an ordinal encoding (rare
   categories beyond :data:`MAX_CATEGORIES` grouped as one) and missing values taken as
   they are. It sees balanced, seeded samples of at most ``drift.multivariate.max_rows``
   rows a side; the score is its ROC AUC averaged over ``folds`` stratified folds.
2. The band: ``chunks`` stretches of the reference (contiguous rows at seeded random starts,
   drawn as :mod:`monitoring.calibration` draws them) of the window's size bucket, each
   against the rest of the reference, give the AUC when nothing drifted. The window drifted
   when its AUC is above their mean plus ``drift.performance_sigmas`` standard deviations
   (NannyML's domain classifier uses such a standard-deviation band too, its
   ``StandardDeviationThreshold``) and above ``drift.multivariate.min_auc`` (on a large
   window the band is narrow, and a real but immaterial difference, such as one production
   year against the next, would cross it); the p-value is the normal approximation's tail
   beyond the window's AUC over the band's mean and standard deviation (floored at
   :data:`monitoring.calibration.MIN_P_VALUE`). A window larger than the stretches (at most
   a quarter of the reference, :func:`monitoring.calibration.part_rows`) is judged by the
   band of the stretches' size, whose AUCs are noisier: the test then errs towards fewer
   alarms. The classifier fits on one thread (see :func:`domain_auc`).
3. The band depends only on the reference, the window's size bucket and the settings
   that shape it, so it is computed once and cached
   (:func:`monitoring.calibration_cache.cached`; without a cache folder, in the process).

Too few rows for ``folds`` folds on either side is no verdict (``detected`` None, and a
``note`` says why), never a failed run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.preprocessing import OrdinalEncoder
from threadpoolctl import threadpool_limits

from monitoring.calibration import MIN_P_VALUE, part_rows
from monitoring.calibration_cache import cached, digest, size_bucket
from monitoring.drift_summary import MultivariateDrift
from pipeline.schema import SchemaError
from pipeline.settings import Settings

METHOD = "domain classifier"
# The classifier: small and quick, a drift detector rather than a model to ship.
CLASSIFIER = {"max_iter": 30, "max_leaf_nodes": 15, "learning_rate": 0.2, "early_stopping": False}
# HistGradientBoosting takes at most 255 categories a feature; the rarest beyond are one.
MAX_CATEGORIES = 250
# Bands computed in this process when no cache folder is given (``compare`` called by a
# test, a benchmark or a notebook window after window): one reference is fitted once.
IN_PROCESS_BANDS = 32
_IN_PROCESS: dict[str, list[float]] = {}
# A band whose AUCs are all alike (a constant reference) still has this spread.
MIN_BAND_STD = 1e-3


def _encoder(frames: list[pd.DataFrame], categorical: list[str]) -> OrdinalEncoder | None:
    """Category codes learnt over ``frames`` (missing stays missing)."""
    if not categorical:
        return None
    encoder = OrdinalEncoder(
        max_categories=MAX_CATEGORIES,
        handle_unknown="use_encoded_value",
        unknown_value=np.nan,
        encoded_missing_value=np.nan,
    )
    encoder.fit(pd.concat([_as_text(f[categorical]) for f in frames], ignore_index=True))
    return encoder


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Categories as ``str`` objects, missing as NaN: what the encoder sorts without a fuss."""
    return frame.astype("string").astype(object).where(frame.notna(), np.nan)


def _matrix(frame: pd.DataFrame, settings: Settings, encoder: OrdinalEncoder | None) -> np.ndarray:
    """The features as one float matrix: numbers first, then category codes."""
    features = settings.data.features
    parts = [frame[list(features.numerical)].to_numpy(dtype="float64", na_value=np.nan)]
    if encoder is not None:
        parts.append(encoder.transform(_as_text(frame[list(features.categorical)])))
    return np.hstack(parts).astype("float64")


def _categorical_mask(settings: Settings) -> np.ndarray:
    features = settings.data.features
    return np.array([False] * len(features.numerical) + [True] * len(features.categorical))


def _side_rows(settings: Settings, *sides: int) -> int:
    """Rows a side the classifier sees: the smaller side, at most ``max_rows``."""
    return min(*sides, settings.drift.multivariate.max_rows)


def domain_auc(
    reference: np.ndarray,
    current: np.ndarray,
    categorical: np.ndarray,
    settings: Settings,
    seed: int,
) -> float:
    """The classifier's cross-validated ROC AUC telling ``current`` rows from ``reference``
    rows, on balanced samples of :func:`_side_rows` rows a side drawn with ``seed`` (0.5,
    chance, when no feature has a value)."""
    rows = _side_rows(settings, len(reference), len(current))
    rng = np.random.default_rng(seed)
    picked = [
        side[rng.choice(len(side), size=rows, replace=False)] for side in (reference, current)
    ]
    features = np.vstack(picked)
    labels = np.repeat([0, 1], rows)
    # A column missing in every row sampled tells nothing apart (and cannot be binned).
    present = ~np.isnan(features).all(axis=0)
    if not present.any():
        return 0.5
    features, categorical = features[:, present], categorical[present]
    model = HistGradientBoostingClassifier(
        **CLASSIFIER,
        categorical_features=categorical if categorical.any() else None,
        random_state=seed,
    )
    folds = StratifiedKFold(settings.drift.multivariate.folds, shuffle=True, random_state=seed)
    # One OpenMP thread: on small samples the threads' start-up and contention cost far more
    # than they give (13 s against 0.17 s a fit on 2 busy cores), and the job shares its cores.
    with threadpool_limits(limits=1, user_api="openmp"):
        scores = cross_val_score(model, features, labels, cv=folds, scoring="roc_auc")
    return float(np.mean(scores))


def band(
    reference: np.ndarray, rows: int, categorical: np.ndarray, settings: Settings
) -> list[float]:
    """The AUC of ``chunks`` stretches of ``rows`` reference rows against the rest each."""
    seed, chunks = settings.data.seed, settings.drift.multivariate.chunks
    starts = np.random.default_rng(seed).integers(0, len(reference) - rows + 1, size=chunks)
    found = []
    for number, start in enumerate(starts):
        inside = np.zeros(len(reference), dtype=bool)
        inside[start : start + rows] = True
        found.append(
            domain_auc(
                reference[~inside], reference[inside], categorical, settings, seed + 1 + number
            )
        )
    return found


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """``rows`` rows of ``frame`` drawn with ``seed`` (all of them, in order, if it has no more)."""
    return frame if len(frame) <= rows else frame.sample(rows, random_state=seed)


def _too_few(settings: Settings, reference_rows: int, current_rows: int) -> str | None:
    """Why the window cannot be judged, or None when it can: every side the classifier
    sees (the window's and its band's) needs a row per fold."""
    folds = settings.drift.multivariate.folds
    rows = (
        part_rows(current_rows, reference_rows, stretches=True)
        if current_rows and reference_rows
        else 0
    )
    if min(current_rows, reference_rows - rows, rows) < folds:
        return (
            f"too few rows for the domain classifier: {current_rows} current and "
            f"{reference_rows} reference rows; each side it sees needs at least "
            f"drift.multivariate.folds ({folds}) rows, the current window, and reference "
            f"stretches of the window's size bucket ({rows} rows) and the rest of the reference"
        )
    return None


def cached_band(
    reference: pd.DataFrame, window_rows: int, settings: Settings, cache: Path | None
) -> tuple[list[float], int]:
    """The band's AUCs for a window of ``window_rows`` rows, and the stretches' size: read
    from ``cache`` when a run computed them for this reference, size bucket and settings."""
    rows = part_rows(window_rows, len(reference), stretches=True)
    multivariate = settings.drift.multivariate

    def compute() -> dict[str, Any]:
        encoder = _encoder([reference], settings.data.features.categorical)
        own = _matrix(reference, settings, encoder)
        return {"aucs": band(own, rows, _categorical_mask(settings), settings)}

    key = {
        "reference": digest(reference[settings.data.features.all]),
        "bucket": size_bucket(window_rows),
        "rows": rows,
        "max_rows": multivariate.max_rows,
        "folds": multivariate.folds,
        "chunks": multivariate.chunks,
        "seed": settings.data.seed,
        "classifier": CLASSIFIER,
    }
    if cache is None:  # no folder: kept in this process instead (see _IN_PROCESS)
        stamp = json.dumps(key, sort_keys=True)
        if stamp not in _IN_PROCESS:
            if len(_IN_PROCESS) >= IN_PROCESS_BANDS:
                _IN_PROCESS.pop(next(iter(_IN_PROCESS)))
            _IN_PROCESS[stamp] = compute()["aucs"]
        return list(_IN_PROCESS[stamp]), rows
    return [float(a) for a in cached(cache, "multivariate", key, compute)["aucs"]], rows


def window_auc(reference: pd.DataFrame, current: pd.DataFrame, settings: Settings) -> float:
    """The window's AUC. Only the rows the classifier sees are encoded (a 100,000-row
    window: ``max_rows`` of them)."""
    side = _side_rows(settings, len(reference), len(current))
    seen = [_sample(frame, side, settings.data.seed) for frame in (reference, current)]
    encoder = _encoder(seen, settings.data.features.categorical)
    return domain_auc(
        _matrix(seen[0], settings, encoder),
        _matrix(seen[1], settings, encoder),
        _categorical_mask(settings),
        settings,
        settings.data.seed,
    )


def judge(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    settings: Settings,
    cache: Path | None = None,
) -> MultivariateDrift:
    """The domain classifier's verdict on ``current`` against ``reference`` (both holding
    the features with plain dtypes), its band cached in ``cache`` per reference and
    window size bucket. Raises :class:`SchemaError` naming a missing feature column."""
    for name, frame in (("reference", reference), ("current", current)):
        missing = [c for c in settings.data.features.all if c not in frame.columns]
        if missing:
            raise SchemaError(f"{name} data is missing feature column(s): {', '.join(missing)}")
    sigmas = settings.drift.performance_sigmas
    reason = _too_few(settings, len(reference), len(current))
    if reason is not None:
        return MultivariateDrift(sigmas=sigmas, note=reason)
    aucs, rows = cached_band(reference, len(current), settings, cache)
    score = window_auc(reference, current, settings)
    mean, spread = float(np.mean(aucs)), max(float(np.std(aucs, ddof=1)), MIN_BAND_STD)
    threshold = max(mean + sigmas * spread, settings.drift.multivariate.min_auc)
    return MultivariateDrift(
        detected=score > threshold,
        score=score,
        threshold=threshold,
        band_mean=mean,
        band_std=spread,
        band=aucs,
        p_value=max(float(stats.norm.sf((score - mean) / spread)), MIN_P_VALUE),
        rows=_side_rows(settings, len(reference), len(current)),
        band_rows=rows,
        sigmas=sigmas,
    )
