"""The drift job's verdicts for a regressor (``data.task: regression``).

Data drift is the classifier's (the features are the same kind of columns); the rest
differs where the outputs do:

- **prediction drift**: the predicted number, a numerical column;
- **performance**: the loss ``drift.performance_metric`` (RMSE or MAE, lower is better),
  estimated before labels by direct loss estimation (:mod:`monitoring.dle`) and realized
  once they join, each against the band of :mod:`monitoring.concept_drift` computed on
  the negated loss (so its upper edge is ``upper_threshold``);
- **concept drift**: the realized loss above the estimate on the same rows by more than
  the estimate's own error (noise over reference chunks, bias on a reference slice), so a
  covariate shift the model handles is not called concept drift;
- **coverage**: the share of labeled rows inside their served interval against the
  nominal ``evaluate.interval_coverage``, a verdict when significantly below (one-sided
  binomial test at ``drift.alpha``); it counts as a performance verdict;
- **label drift**: the target's distribution, Evidently's numerical method, beside
  Evidently's regression report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from monitoring import concept_drift, drift_reports
from monitoring.dle import LossModel
from monitoring.drift_summary import ConceptDrift, Coverage, LabelDrift, Performance
from pipeline.schema import (
    INTERVAL_COLUMNS,
    INTERVAL_LOWER,
    INTERVAL_UPPER,
    PREDICTION,
    SchemaError,
    coerce_features,
)
from pipeline.settings import Settings


def numbers(values: pd.Series, column: str, name: str) -> pd.Series:
    """``values`` as float64; a value that is no finite number is an error naming it."""
    if pd.api.types.is_bool_dtype(values):
        raise SchemaError(f"{name} data's column {column!r} holds booleans, not numbers")
    parsed = pd.to_numeric(values, errors="coerce").astype("float64")
    bad = values[values.notna() & ~np.isfinite(parsed)]
    if len(bad):
        raise SchemaError(
            f"{name} data's column {column!r} holds {len(bad)} value(s) that are not finite "
            f"numbers, for example {str(bad.iloc[0])[:40]!r}"
        )
    return parsed


def plain(frame: pd.DataFrame, settings: Settings, name: str) -> pd.DataFrame:
    """Features, the prediction, its interval and the label with plain float dtypes."""
    out = coerce_features(frame, settings.data)
    target = settings.data.target
    for column in (PREDICTION, *INTERVAL_COLUMNS):
        if column in frame:
            out[column] = numbers(frame[column], column, name)
    if target in frame.columns:
        out[target] = numbers(frame[target], target, name)
    else:
        out[target] = pd.Series(np.nan, index=frame.index, dtype="float64")
    return out


def _positive(performance: Performance, concept: ConceptDrift) -> tuple[Performance, ConceptDrift]:
    """The judged sections back from negated losses to losses: the band's edge is an upper
    threshold; drop and gap keep their sign (positive: worse)."""

    def flip(value: float | None) -> float | None:
        return None if value is None else -value

    performance = performance.model_copy(
        update={
            "higher_is_better": False,
            "reference": flip(performance.reference),
            "estimated": flip(performance.estimated),
            "realized": flip(performance.realized),
            "upper_threshold": flip(performance.lower_threshold),
            "labeled_upper_threshold": flip(performance.labeled_lower_threshold),
            "lower_threshold": None,
            "labeled_lower_threshold": None,
        }
    )
    concept = concept.model_copy(
        update={
            "reference": flip(concept.reference),
            "current": flip(concept.current),
            "estimated": flip(concept.estimated),
        }
    )
    return performance, concept


def coverage(labeled: pd.DataFrame, settings: Settings) -> Coverage:
    """The served intervals' coverage on the labeled rows against the nominal one."""
    from scipy.stats import binomtest

    nominal, alpha = settings.evaluate.interval_coverage, settings.drift.alpha
    rows = labeled[labeled[settings.data.target].notna()]
    if not set(INTERVAL_COLUMNS) <= set(rows.columns):
        return Coverage(nominal=nominal, labeled_rows=len(rows), alpha=alpha)
    truth = rows[settings.data.target]
    inside = int(((truth >= rows[INTERVAL_LOWER]) & (truth <= rows[INTERVAL_UPPER])).sum())
    judged = len(rows) >= settings.drift.min_labeled_rows
    p_value = (
        float(binomtest(inside, len(rows), nominal, alternative="less").pvalue) if judged else None
    )
    return Coverage(
        nominal=nominal,
        realized=inside / len(rows) if len(rows) else None,
        inside=inside,
        labeled_rows=len(rows),
        p_value=p_value,
        alpha=alpha,
        detected=None if p_value is None else p_value < alpha,
    )


def performance_and_concept(
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    lab: pd.DataFrame,
    slices: list[np.ndarray],
    settings: Settings,
    labeled_rows: int,
) -> tuple[Performance, ConceptDrift]:
    """The loss estimated (DLE) and realized, concept drift and the intervals' coverage."""
    losses = LossModel(ref, settings)
    performance, concept = concept_drift.judge(
        losses.window(ref, reference=True),
        losses.window(cur),
        losses.window(lab),
        slices,
        settings,
        labeled_rows=labeled_rows,
    )
    performance, concept = _positive(performance, concept)
    covered = coverage(lab, settings)
    detected = performance.detected
    if covered.detected:
        detected = True
    return performance.model_copy(update={"coverage": covered, "detected": detected}), concept


def label_drift(ref: pd.DataFrame, lab: pd.DataFrame, settings: Settings) -> tuple[LabelDrift, Any]:
    """Drift of the target's distribution, and Evidently's regression report beside it."""
    report = drift_reports.regression_report(ref, lab, settings)
    label = drift_reports.verdicts(report, {settings.data.target})[settings.data.target]
    verdict = LabelDrift(
        detected=label.detected, method=label.method, score=label.score, threshold=label.threshold
    )
    return verdict, report
