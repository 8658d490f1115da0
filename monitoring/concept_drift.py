"""Performance drop and concept drift, told apart.

Two questions, each answered by a one-sided bootstrap test at ``drift.alpha`` *and* a
band calibrated on the reference set, so neither noise in small windows nor a negligible
but significant change in large ones raises an alarm, and no effect size is fixed:

- **performance drop**: is the metric on the window (estimated by CBPE from the
  probabilities, realized once labels join) below ``lower_threshold``? The threshold is
  the metric's mean over reference chunks of the window's size minus
  ``drift.performance_sigmas`` standard deviations, the deviation combining the chunks'
  spread with the reference's own (it too is a sample). A realized drop must also be
  significant against the reference (independent bootstrap of both).
- **concept drift**: is the realized metric below the *estimate on the same rows*
  significantly (paired bootstrap of the labeled rows) and by more than CBPE's own error?
  That error has two parts, both measured on the reference: noise (the band of the
  estimate-minus-realized gap over reference chunks of the window's size) and bias on a
  subpopulation (the largest gap on a slice of the reference cut by one feature: its
  quantiles, or one of its frequent categories). Calibration is fitted on the whole
  reference, so a window made of one slice (the over-55s, say) can be estimated a point
  too high with P(y|x) unchanged; covariate shift alone moves the estimate and the
  realized metric together up to that bias, only a change in P(y|x) parts them further.

``drift.min_performance_drop`` is an optional fixed floor on both (0 by default).
Resampling is done as multinomial weights over fixed arrays, so hundreds of resamples of
tens of thousands of rows take about a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitoring.cbpe import Window, estimated, realized
from monitoring.drift_summary import ConceptDrift, Performance
from pipeline.settings import Settings


def _resample(rng: np.random.Generator, rows: int, size: int) -> np.ndarray:
    """Multinomial weights: ``size`` rows drawn with replacement out of ``rows``."""
    return np.bincount(rng.integers(0, rows, size), minlength=rows).astype("float64")


@dataclass(frozen=True)
class Band:
    """The metric and the estimate-minus-realized gap over reference chunks of one size."""

    mean: float
    spread: float
    gap_mean: float
    gap_spread: float


def reference_band(
    reference: Window, metric: str, size: int, resamples: int, rng: np.random.Generator
) -> Band:
    values, gaps = [], []
    for _ in range(resamples):
        weight = _resample(rng, len(reference), size)
        value = realized(metric, reference, weight)
        values.append(value)
        gaps.append(estimated(metric, reference, weight) - value)
    return Band(
        float(np.nanmean(values)),
        float(np.nanstd(values)),
        float(np.nanmean(gaps)),
        float(np.nanstd(gaps)),
    )


def bootstrap_tests(
    reference: Window, current: Window, metric: str, resamples: int, rng: np.random.Generator
) -> tuple[float, float]:
    """One-sided bootstrap p-values for "realized is lower on current than on reference"
    (both resampled independently) and "realized is below the estimate on current" (the
    same resample of current for both, i.e. paired).

    Each p-value is the share of resampled differences at or below zero, with the usual +1
    correction, so its floor is ``1 / (resamples + 1)``.
    """
    drops, gaps = [], []
    for _ in range(resamples):
        weight = _resample(rng, len(current), len(current))
        value = realized(metric, current, weight)
        reference_weight = _resample(rng, len(reference), len(reference))
        drops.append(realized(metric, reference, reference_weight) - value)
        gaps.append(estimated(metric, current, weight) - value)

    def p_value(differences: list[float]) -> float:
        return (1 + int(np.sum(~(np.array(differences) > 0)))) / (resamples + 1)

    return p_value(drops), p_value(gaps)


def slice_bias(reference: Window, slices: list[np.ndarray], metric: str) -> float:
    """CBPE's largest overestimate on a slice of the reference (0 when it never overestimates)."""
    gaps = [
        estimated(metric, part, None) - realized(metric, part, None)
        for part in (reference.rows(keep) for keep in slices)
    ]
    finite = [g for g in gaps if np.isfinite(g)]
    return max([0.0, *finite])


def no_verdict(settings: Settings, labeled_rows: int) -> tuple[Performance, ConceptDrift]:
    """Both sections before (or without) a judgement: the settings they use."""
    drift = settings.drift
    performance = Performance(
        metric=drift.performance_metric,
        alpha=drift.alpha,
        sigmas=drift.performance_sigmas,
        min_drop=drift.min_performance_drop,
        labeled_rows=labeled_rows,
        min_labeled_rows=drift.min_labeled_rows,
    )
    concept = ConceptDrift(
        metric=drift.performance_metric,
        alpha=drift.alpha,
        min_drop=drift.min_performance_drop,
        labeled_rows=labeled_rows,
        min_labeled_rows=drift.min_labeled_rows,
    )
    return performance, concept


def judge(
    reference: Window,
    current: Window,
    labeled: Window,
    slices: list[np.ndarray],
    settings: Settings,
    labeled_rows: int | None = None,
) -> tuple[Performance, ConceptDrift]:
    """Both verdicts: the estimate on ``current``, the realized metric and concept drift on
    ``labeled`` (the rows whose label joined: those of ``current``, or a sample of a larger
    window's); ``labeled_rows`` is how many the window holds (default: ``len(labeled)``).
    ``slices`` are masks of reference rows, see :func:`slice_bias`."""
    drift, metric = settings.drift, settings.drift.performance_metric
    sigmas, floor = drift.performance_sigmas, drift.min_performance_drop
    rng = np.random.default_rng(settings.data.seed)
    counted = len(labeled) if labeled_rows is None else labeled_rows
    performance, concept = no_verdict(settings, counted)
    whole = reference_band(reference, metric, len(reference), drift.bootstrap, rng)
    bands: dict[int, Band] = {}

    def band(size: int) -> Band:
        if size not in bands:
            bands[size] = reference_band(reference, metric, size, drift.bootstrap, rng)
        return bands[size]

    def lower(size: int) -> float:
        chunk = band(size)
        return chunk.mean - sigmas * float(np.hypot(chunk.spread, whole.spread))

    reference_value = realized(metric, reference)
    estimate = estimated(metric, current)
    threshold = lower(len(current))
    performance = performance.model_copy(
        update={
            "reference": reference_value,
            "estimated": estimate,
            "lower_threshold": threshold,
            "estimated_drop_detected": bool(
                estimate < threshold and reference_value - estimate >= floor
            ),
        }
    )
    performance.detected = performance.estimated_drop_detected
    if performance.labeled_rows < drift.min_labeled_rows:
        return performance, concept

    rows = labeled
    value = realized(metric, rows)
    labeled_threshold = lower(len(rows))
    p_drop, p_gap = bootstrap_tests(reference, rows, metric, drift.bootstrap, rng)
    drop_detected = bool(
        value < labeled_threshold and p_drop < drift.alpha and reference_value - value >= floor
    )
    performance = performance.model_copy(
        update={
            "realized": value,
            "labeled_lower_threshold": labeled_threshold,
            "p_value": p_drop,
            "drop_detected": drop_detected,
            "detected": drop_detected,
        }
    )

    estimate_here = estimated(metric, rows)
    gap = estimate_here - value
    chunk = band(len(rows))
    noise = chunk.gap_mean + sigmas * float(np.hypot(chunk.gap_spread, whole.gap_spread))
    gap_threshold = slice_bias(reference, slices, metric) + noise
    concept = concept.model_copy(
        update={
            "reference": reference_value,
            "current": value,
            "estimated": estimate_here,
            "drop": reference_value - value,
            "gap": gap,
            "gap_threshold": gap_threshold,
            "p_value": p_gap,
            "detected": bool(gap > gap_threshold and p_gap < drift.alpha and gap >= floor),
        }
    )
    return performance, concept
