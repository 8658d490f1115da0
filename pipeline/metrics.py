"""Metrics with one meaning across the pipeline, the gate and the drift job.

Classification: binary problems score the second class of the model (``classes_[1]``) as
positive; multiclass problems use one-vs-rest ROC AUC and macro F1, weighted by nothing.
Regression: RMSE, MAE, R² and MAPE (only where no true value is zero: a zero makes the
percentage error infinite). :func:`model_score` scores a fitted model of either task.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_regressor
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from pipeline.labels import normalize_label
from pipeline.tasks import HIGHER_IS_BETTER, TASK_METRICS

CLASSIFICATION_METRICS = TASK_METRICS["classification"]
REGRESSION_METRICS = TASK_METRICS["regression"]


class MetricUndefined(ValueError):
    """A metric the data cannot give (MAPE with a true value of zero)."""


def regression_score(y_true: Any, predicted: Any, metric: str) -> float:
    """One regression metric of true values ``y_true`` and predictions ``predicted``."""
    y, p = np.asarray(y_true, dtype="float64"), np.asarray(predicted, dtype="float64")
    if metric == "rmse":
        return float(root_mean_squared_error(y, p))
    if metric == "mae":
        return float(mean_absolute_error(y, p))
    if metric == "r2":
        return float(r2_score(y, p))
    if metric == "mape":
        if (y == 0).any():
            raise MetricUndefined(f"mape: {int((y == 0).sum())} true value(s) are zero")
        return float(mean_absolute_percentage_error(y, p))
    raise ValueError(f"unknown metric {metric!r}: expected one of {sorted(REGRESSION_METRICS)}")


def regression_metrics(y_true: Any, predicted: Any) -> dict[str, Any]:
    """Every regression metric the data defines (MAPE left out where a true value is 0)."""
    out: dict[str, Any] = {}
    for metric in REGRESSION_METRICS:
        try:
            out[metric] = regression_score(y_true, predicted, metric)
        except MetricUndefined:
            continue
    return {**out, "rows": len(np.asarray(y_true))}


def model_score(model: Any, X: pd.DataFrame, y_true: pd.Series, metric: str) -> float:
    """``metric`` of a fitted model of either task on features ``X`` and targets ``y_true``."""
    if is_regressor(model):
        return regression_score(y_true.astype("float64"), model.predict(X), metric)
    classes = [normalize_label(c) for c in model.classes_]
    return score(y_true.astype(str), model.predict_proba(X), classes, metric)


def score(y_true: pd.Series, proba: np.ndarray, classes: list[str], metric: str) -> float:
    """One metric for labels ``y_true`` and class probabilities ``proba`` (one column a class)."""
    labels = np.asarray(classes)[proba.argmax(axis=1)]
    binary = len(classes) == 2
    if metric == "roc_auc":
        if binary:
            return float(roc_auc_score(y_true == classes[1], proba[:, 1]))
        return float(roc_auc_score(y_true, proba, labels=classes, multi_class="ovr"))
    if metric == "accuracy":
        return float(accuracy_score(y_true, labels))
    if metric == "f1":
        if binary:
            return float(f1_score(y_true, labels, pos_label=classes[1]))
        return float(f1_score(y_true, labels, labels=classes, average="macro"))
    if metric == "log_loss":
        return float(log_loss(y_true, proba, labels=classes))
    raise ValueError(f"unknown metric {metric!r}: expected one of {sorted(CLASSIFICATION_METRICS)}")


def all_metrics(y_true: pd.Series, proba: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Every headline metric, plus precision, recall and F1 per class."""
    labels = np.asarray(classes)[proba.argmax(axis=1)]
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, labels, labels=classes, zero_division=0
    )
    per_class = {
        c: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
    }
    headline: dict[str, Any] = {m: score(y_true, proba, classes, m) for m in CLASSIFICATION_METRICS}
    return {**headline, "rows": len(y_true), "per_class": per_class}


def permutation_importance(
    model: Any,
    X: pd.DataFrame,
    y_true: pd.Series,
    metric: str,
    repeats: int,
    seed: int,
    rows: int | None = None,
) -> dict[str, float]:
    """How much ``metric`` worsens when each feature's values are shuffled (mean over repeats).

    scikit-learn's ``permutation_importance`` with this module's metric (so the gate's
    metric means the same here); positive is "the model relies on it". The drift job
    normalises these into weights for its importance-weighted share of drifted columns.
    ``rows``: each repeat scores a seeded sample of that many rows (all when ``None`` or
    no fewer than ``X`` has).
    """
    from sklearn.inspection import permutation_importance as permute

    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0

    def scorer(estimator: Any, X_: pd.DataFrame, y_: pd.Series) -> float:
        return sign * model_score(estimator, X_, y_, metric)

    sample = 1.0 if rows is None or rows >= len(X) else rows
    result = permute(
        model, X, y_true, scoring=scorer, n_repeats=repeats, random_state=seed, max_samples=sample
    )
    return {str(c): float(v) for c, v in zip(X.columns, result.importances_mean, strict=True)}
