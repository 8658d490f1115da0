"""Confidence-based performance estimation (CBPE, as NannyML does it), small and exact.

A classification metric is a sum over rows of "was this row's class c?" indicators. With
labels those are 0 or 1 (one-hot truth); without them, a calibrated model's probability
of class c *is* the expected value of the indicator. So one function computes a metric
from a "truth" matrix, and the estimate is that function fed calibrated probabilities:

- accuracy: mean over rows of the truth of the predicted class;
- F1 (binary: of the positive class; multiclass: macro over classes): expected true
  positives, false positives and false negatives out of the truth matrix;
- ROC AUC (binary: positive class; multiclass: macro one-vs-rest, as scikit-learn's
  ``multi_class="ovr"``): the ranked scores stay the model's; each row counts as
  ``truth`` of a positive and ``1 - truth`` of a negative, which is NannyML's expected
  ROC curve (TPR steps by ``p / sum p``, FPR by ``(1 - p) / sum (1 - p)``) integrated
  exactly by trapezoids: ties, and a row with itself, count half.

Probabilities are calibrated on the reference set by isotonic regression per class
(one-vs-rest, rows renormalised when multiclass), as NannyML's CBPE does. Rows carry
weights so the bootstraps in :mod:`monitoring.concept_drift` re-weight instead of copying.
We do not use NannyML itself; docs/performance_estimation.md says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from pipeline.schema import PREDICTION, proba_column

METRICS = ("roc_auc", "accuracy", "f1")


@dataclass(frozen=True)
class Window:
    """One set of scored rows as arrays: what every metric here needs.

    ``ranks[:, c]`` ranks class c's probability within the window (0..k-1, ties share a
    rank), ``predicted`` is the predicted class index, ``proba`` the calibrated class
    probabilities and ``onehot`` the labels (all zero where a row has none).
    """

    ranks: np.ndarray
    predicted: np.ndarray
    proba: np.ndarray
    onehot: np.ndarray

    def __len__(self) -> int:
        return len(self.predicted)

    def rows(self, keep: np.ndarray) -> Window:
        return Window(self.ranks[keep], self.predicted[keep], self.proba[keep], self.onehot[keep])

    def realized(self, name: str, weight: np.ndarray | None = None) -> float:
        return realized(name, self, weight)

    def estimated(self, name: str, weight: np.ndarray | None = None) -> float:
        return estimated(name, self, weight)


class Calibrator:
    """Isotonic calibration per class, fitted on the reference set's probabilities and labels."""

    def __init__(self, proba: np.ndarray, onehot: np.ndarray) -> None:
        k = proba.shape[1]
        self.binary = k == 2
        fitted = [1] if self.binary else range(k)
        self.models = {
            c: IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
                proba[:, c], onehot[:, c]
            )
            for c in fitted
        }

    def __call__(self, proba: np.ndarray) -> np.ndarray:
        if self.binary:
            positive = self.models[1].predict(proba[:, 1])
            return np.column_stack([1 - positive, positive])
        calibrated = np.column_stack([m.predict(proba[:, c]) for c, m in self.models.items()])
        totals = calibrated.sum(axis=1, keepdims=True)
        # A row every calibrator puts at 0 keeps the model's own probabilities.
        return np.where(totals > 0, calibrated / np.where(totals > 0, totals, 1), proba)


def window(
    frame: pd.DataFrame, classes: list[str], target: str, calibrate: Calibrator | None = None
) -> Window:
    """The arrays of ``frame`` (``proba_<class>``, ``prediction`` and the label if any)."""
    raw = frame[[proba_column(c) for c in classes]].to_numpy(dtype="float64")
    ranks = np.column_stack([np.unique(column, return_inverse=True)[1] for column in raw.T])
    index = {c: i for i, c in enumerate(classes)}
    predicted = frame[PREDICTION].map(index).to_numpy(dtype="int64")
    labels = frame[target].map(index) if target in frame else pd.Series(np.nan, index=frame.index)
    onehot = np.zeros_like(raw)
    known = labels.notna().to_numpy()
    onehot[np.flatnonzero(known), labels[known].to_numpy(dtype="int64")] = 1.0
    proba = raw if calibrate is None or not len(raw) else calibrate(raw)
    return Window(ranks, predicted, proba, onehot)


def _auc(truth: np.ndarray, ranks: np.ndarray, weight: np.ndarray) -> float:
    positives = np.bincount(ranks, weights=weight * truth)
    negatives = np.bincount(ranks, weights=weight * (1 - truth))
    total_positive, total_negative = positives.sum(), negatives.sum()
    if total_positive <= 0 or total_negative <= 0:
        return float("nan")
    below = np.cumsum(negatives) - negatives
    return float(np.sum(positives * (below + 0.5 * negatives)) / (total_positive * total_negative))


def _f1(truth: np.ndarray, hit: np.ndarray, weight: np.ndarray) -> float:
    true_positive = float(np.sum(weight * truth * hit))
    false_positive = float(np.sum(weight * (1 - truth) * hit))
    false_negative = float(np.sum(weight * truth * ~hit))
    denominator = 2 * true_positive + false_positive + false_negative
    return 2 * true_positive / denominator if denominator else 0.0


def metric(name: str, data: Window, truth: np.ndarray, weight: np.ndarray | None = None) -> float:
    """``name`` on the window's rows with ``truth`` (``data.onehot``: realized; ``data.proba``:
    estimated), rows weighted by ``weight`` (all 1 when ``None``)."""
    w = np.ones(len(data)) if weight is None else weight
    k = truth.shape[1]
    if name == "accuracy":
        total = float(np.sum(w))
        return float(np.sum(w * truth[np.arange(len(data)), data.predicted])) / total
    scored = [1] if k == 2 else range(k)
    if name == "roc_auc":
        values = [_auc(truth[:, c], data.ranks[:, c], w) for c in scored]
    elif name == "f1":
        values = [_f1(truth[:, c], data.predicted == c, w) for c in scored]
    else:
        raise ValueError(f"unknown metric {name!r}: expected one of {METRICS}")
    return float(np.mean(values))


def realized(name: str, data: Window, weight: np.ndarray | None = None) -> float:
    return metric(name, data, data.onehot, weight)


def estimated(name: str, data: Window, weight: np.ndarray | None = None) -> float:
    return metric(name, data, data.proba, weight)
