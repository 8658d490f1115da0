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
from typing import Protocol

import numpy as np

from monitoring.drift_summary import ConceptDrift, Performance
from pipeline.settings import Settings
from pipeline.tasks import HIGHER_IS_BETTER


class Window(Protocol):
    """Scored rows with a realized metric (from labels) and an estimated one (without):
    :class:`monitoring.cbpe.Window` (classification) or :class:`monitoring.dle.LossWindow`
    (regression, its loss negated so that here too higher is better)."""

    def __len__(self) -> int: ...
    def rows(self, keep: np.ndarray) -> Window: ...
    def realized(self, name: str, weight: np.ndarray | None = None) -> float: ...
    def estimated(self, name: str, weight: np.ndarray | None = None) -> float: ...


def realized(metric: str, data: Window, weight: np.ndarray | None = None) -> float:
    return data.realized(metric, weight)


def estimated(metric: str, data: Window, weight: np.ndarray | None = None) -> float:
    return data.estimated(metric, weight)


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
        higher_is_better=HIGHER_IS_BETTER[drift.performance_metric],
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


class Bands:
    """The reference's bands by window size, each computed once: ``whole`` is the band of
    the whole reference (its own sampling spread), combined into every threshold."""

    def __init__(self, reference: Window, settings: Settings, rng: np.random.Generator):
        self.reference, self.rng = reference, rng
        self.metric = settings.drift.performance_metric
        self.resamples, self.sigmas = settings.drift.bootstrap, settings.drift.performance_sigmas
        self._bands: dict[int, Band] = {}
        self.whole = self.band(len(reference))

    def band(self, size: int) -> Band:
        if size not in self._bands:
            self._bands[size] = reference_band(
                self.reference, self.metric, size, self.resamples, self.rng
            )
        return self._bands[size]

    def lower(self, size: int) -> float:
        """Below this a window of ``size`` rows performs worse than the reference's chunks."""
        chunk = self.band(size)
        return chunk.mean - self.sigmas * float(np.hypot(chunk.spread, self.whole.spread))

    def gap_noise(self, size: int) -> float:
        """How far the estimate may exceed the realized metric on ``size`` rows by noise."""
        chunk = self.band(size)
        return chunk.gap_mean + self.sigmas * float(
            np.hypot(chunk.gap_spread, self.whole.gap_spread)
        )


def _estimated_drop(
    performance: Performance, bands: Bands, current: Window, settings: Settings
) -> Performance:
    """The estimate (CBPE, no labels) on ``current`` against the band for its size."""
    metric, floor = settings.drift.performance_metric, settings.drift.min_performance_drop
    reference_value = realized(metric, bands.reference)
    estimate = estimated(metric, current)
    threshold = bands.lower(len(current))
    detected = bool(estimate < threshold and reference_value - estimate >= floor)
    return performance.model_copy(
        update={
            "reference": reference_value,
            "estimated": estimate,
            "lower_threshold": threshold,
            "estimated_drop_detected": detected,
            "detected": detected,
        }
    )


def _realized_drop(
    performance: Performance, bands: Bands, rows: Window, p_drop: float, settings: Settings
) -> Performance:
    """The realized metric on the labeled ``rows``: below the band and significantly."""
    drift = settings.drift
    value = realized(drift.performance_metric, rows)
    threshold = bands.lower(len(rows))
    reference_value = performance.reference
    assert reference_value is not None  # set by :func:`_estimated_drop`
    detected = bool(
        value < threshold
        and p_drop < drift.alpha
        and reference_value - value >= drift.min_performance_drop
    )
    return performance.model_copy(
        update={
            "realized": value,
            "labeled_lower_threshold": threshold,
            "p_value": p_drop,
            "drop_detected": detected,
            "detected": detected,
        }
    )


def _concept(
    concept: ConceptDrift,
    bands: Bands,
    rows: Window,
    slices: list[np.ndarray],
    p_gap: float,
    settings: Settings,
) -> ConceptDrift:
    """Realized below the estimate on the same ``rows`` by more than CBPE's own error."""
    drift, metric = settings.drift, settings.drift.performance_metric
    reference_value = realized(metric, bands.reference)
    value = realized(metric, rows)
    estimate = estimated(metric, rows)
    gap = estimate - value
    gap_threshold = slice_bias(bands.reference, slices, metric) + bands.gap_noise(len(rows))
    return concept.model_copy(
        update={
            "reference": reference_value,
            "current": value,
            "estimated": estimate,
            "drop": reference_value - value,
            "gap": gap,
            "gap_threshold": gap_threshold,
            "p_value": p_gap,
            "detected": bool(
                gap > gap_threshold and p_gap < drift.alpha and gap >= drift.min_performance_drop
            ),
        }
    )


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
    drift = settings.drift
    rng = np.random.default_rng(settings.data.seed)
    counted = len(labeled) if labeled_rows is None else labeled_rows
    performance, concept = no_verdict(settings, counted)
    bands = Bands(reference, settings, rng)
    performance = _estimated_drop(performance, bands, current, settings)
    if performance.labeled_rows < drift.min_labeled_rows:
        return performance, concept
    bands.band(len(labeled))  # drawn before the tests: the seed's draws stay in order
    p_drop, p_gap = bootstrap_tests(
        reference, labeled, drift.performance_metric, drift.bootstrap, rng
    )
    performance = _realized_drop(performance, bands, labeled, p_drop, settings)
    return performance, _concept(concept, bands, labeled, slices, p_gap, settings)
