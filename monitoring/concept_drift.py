"""Concept drift: is the model doing worse on the labeled current rows than on the reference?

Decided by a one-sided bootstrap test on the performance metric at ``drift.alpha``
together with a minimum drop ``drift.min_performance_drop``: the test alone fires on
negligible but significant changes in large windows, the drop alone on noise in small
ones. Resampling is done as multinomial weights over fixed arrays, so 300 resamples of
tens of thousands of rows take about a second. For more than two classes the metric is
computed for the last class against the rest.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from monitoring.drift_summary import ConceptDrift
from pipeline.schema import PREDICTION, proba_column
from pipeline.settings import Settings

Metric = Callable[[np.ndarray, np.ndarray, np.ndarray], float]


def roc_auc(y: np.ndarray, score: np.ndarray, weight: np.ndarray) -> float:
    """Weighted ROC AUC (ties count half): one pass, no sorting, so a bootstrap is cheap.

    ``score`` holds ranks of the unique scores (0..k-1), so a resample only re-weights.
    """
    positives = np.bincount(score, weights=weight * y)
    negatives = np.bincount(score, weights=weight * ~y)
    total_positive, total_negative = positives.sum(), negatives.sum()
    if total_positive == 0 or total_negative == 0:
        return float("nan")
    below = np.cumsum(negatives) - negatives
    pairs = float(np.sum(positives * (below + 0.5 * negatives)))
    return pairs / float(total_positive * total_negative)


def accuracy(y: np.ndarray, predicted: np.ndarray, weight: np.ndarray) -> float:
    return float(np.sum(weight * (y == predicted)) / np.sum(weight))


def f1(y: np.ndarray, predicted: np.ndarray, weight: np.ndarray) -> float:
    true_positives = float(np.sum(weight * (y & predicted)))
    denominator = float(np.sum(weight * y) + np.sum(weight * predicted))
    return 2 * true_positives / denominator if denominator else 0.0


def performance_test(
    reference: tuple[np.ndarray, np.ndarray],
    current: tuple[np.ndarray, np.ndarray],
    metric: Metric,
    resamples: int,
    seed: int,
) -> tuple[float, float, float]:
    """Metric on both samples and a one-sided bootstrap p-value for "current is worse".

    Both samples are resampled independently (as multinomial weights); the p-value is the
    share of resampled differences (reference minus current) at or below zero, with the
    usual +1 correction, so its floor is ``1 / (resamples + 1)``.
    """
    rng = np.random.default_rng(seed)

    def value(sample: tuple[np.ndarray, np.ndarray], weight: np.ndarray | None = None) -> float:
        n = len(sample[0])
        return metric(*sample, np.ones(n) if weight is None else weight)

    def resample(n: int) -> np.ndarray:
        return np.bincount(rng.integers(0, n, n), minlength=n).astype("float64")

    drops = np.array(
        [
            value(reference, resample(len(reference[0])))
            - value(current, resample(len(current[0])))
            for _ in range(resamples)
        ]
    )
    p_value = (1 + int(np.sum(~(drops > 0)))) / (resamples + 1)
    return value(reference), value(current), p_value


def no_verdict(settings: Settings, labeled_rows: int) -> ConceptDrift:
    """The concept-drift section before (or without) a judgement: the settings it uses."""
    drift = settings.drift
    return ConceptDrift(
        metric=drift.performance_metric,
        alpha=drift.alpha,
        min_drop=drift.min_performance_drop,
        labeled_rows=labeled_rows,
        min_labeled_rows=drift.min_labeled_rows,
    )


def judge(
    reference: pd.DataFrame, labeled: pd.DataFrame, settings: Settings, positive: str
) -> ConceptDrift:
    """The verdict on the labeled current rows; no verdict below ``drift.min_labeled_rows``."""
    drift = settings.drift
    verdict = no_verdict(settings, len(labeled))
    if len(labeled) < drift.min_labeled_rows:
        return verdict
    target = settings.data.target

    scores = np.concatenate(
        [f[proba_column(positive)].to_numpy(dtype="float64") for f in (reference, labeled)]
    )
    ranks = np.unique(scores, return_inverse=True)[1]

    def arrays(frame: pd.DataFrame, offset: int) -> tuple[np.ndarray, np.ndarray]:
        y = (frame[target] == positive).to_numpy(dtype=bool)
        if drift.performance_metric == "roc_auc":
            return y, ranks[offset : offset + len(frame)]
        return y, (frame[PREDICTION] == positive).to_numpy(dtype=bool)

    metric: Metric = {"roc_auc": roc_auc, "accuracy": accuracy, "f1": f1}[drift.performance_metric]
    ref_value, cur_value, p_value = performance_test(
        arrays(reference, 0),
        arrays(labeled, len(reference)),
        metric,
        drift.bootstrap,
        settings.data.seed,
    )
    drop = ref_value - cur_value
    return verdict.model_copy(
        update={
            "reference": ref_value,
            "current": cur_value,
            "drop": drop,
            "p_value": p_value,
            "detected": bool(p_value < drift.alpha and drop >= drift.min_performance_drop),
        }
    )
