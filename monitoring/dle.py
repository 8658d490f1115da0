"""Direct loss estimation (DLE, as NannyML does it) for a regressor, small and exact.

Without labels a regressor's error is unknown, but how large it tends to be is a function
of the inputs and the prediction: a loss model fitted on the reference set (held-out rows
the regressor was scored on, with their true values) learns ``E[loss | x, ŷ]``, and its
mean over a window estimates the window's RMSE (the loss modelled is the squared error)
or MAE (the absolute error). A covariate shift towards rows the regressor gets wrong
raises the estimate; only a change of the target's rule given the inputs (concept drift)
makes the realized loss exceed it.

The loss model is a ``HistGradientBoostingRegressor`` on the features (categories
ordinal-encoded, unknown ones missing) and the prediction. Its estimate on the
reference rows is cross-fitted (each half estimated by the model fitted on the other),
so the band of estimate-minus-realized gaps that concept drift must exceed is measured
on rows the loss model never saw, as every window's will be.

:class:`LossWindow` gives :mod:`monitoring.concept_drift` the negated loss, so its bands
and tests, written for higher-is-better metrics, judge a regressor unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.schema import PREDICTION
from pipeline.settings import Settings

METRICS = ("rmse", "mae")
FOLDS = 2


@dataclass(frozen=True)
class LossWindow:
    """Rows as arrays: the observed loss (NaN where no label joined) and the estimated one,
    squared errors for RMSE, absolute errors for MAE (``metric`` says which)."""

    observed: np.ndarray
    expected: np.ndarray

    def __len__(self) -> int:
        return len(self.expected)

    def rows(self, keep: np.ndarray) -> LossWindow:
        return LossWindow(self.observed[keep], self.expected[keep])

    def realized(self, name: str, weight: np.ndarray | None = None) -> float:
        return -_aggregate(name, self.observed, weight)

    def estimated(self, name: str, weight: np.ndarray | None = None) -> float:
        return -_aggregate(name, self.expected, weight)


def _aggregate(name: str, losses: np.ndarray, weight: np.ndarray | None) -> float:
    """RMSE or MAE out of per-row losses (squared or absolute errors), rows weighted."""
    w = np.ones(len(losses)) if weight is None else weight
    known = ~np.isnan(losses)
    total = float(np.sum(w[known]))
    if total <= 0:
        return float("nan")
    mean = float(np.sum(w[known] * losses[known]) / total)
    if name == "rmse":
        return float(np.sqrt(mean))
    if name == "mae":
        return mean
    raise ValueError(f"unknown metric {name!r}: expected one of {METRICS}")


def row_loss(name: str, truth: Any, predicted: Any) -> np.ndarray:
    """The per-row loss ``name`` aggregates: squared error (rmse) or absolute error (mae)."""
    error = np.asarray(truth, dtype="float64") - np.asarray(predicted, dtype="float64")
    loss: np.ndarray = error**2 if name == "rmse" else np.abs(error)
    return loss


class LossModel:
    """``E[loss | features, prediction]``, fitted on the reference set; cross-fitted on it."""

    def __init__(self, reference: pd.DataFrame, settings: Settings) -> None:
        from sklearn.preprocessing import OrdinalEncoder

        self.settings = settings
        self.metric = settings.drift.performance_metric
        categorical = settings.data.features.categorical
        self.encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan
        ).fit(reference[categorical].astype(object).fillna("__missing__"))
        X = self._inputs(reference)
        y = row_loss(self.metric, reference[settings.data.target], reference[PREDICTION])
        folds = np.random.default_rng(settings.data.seed).integers(0, FOLDS, len(reference))
        self.reference_estimate = np.empty(len(reference))
        self.models = []
        for fold in range(FOLDS):
            held = folds == fold
            model = self._fit(X[~held], y[~held])
            self.reference_estimate[held] = self._predict(model, X[held])
            self.models.append(model)

    def _inputs(self, frame: pd.DataFrame) -> np.ndarray:
        features = self.settings.data.features
        numbers = frame[features.numerical].to_numpy(dtype="float64")
        codes = self.encoder.transform(
            frame[features.categorical].astype(object).fillna("__missing__")
        )
        prediction = frame[PREDICTION].to_numpy(dtype="float64").reshape(-1, 1)
        return np.hstack([numbers, np.asarray(codes, dtype="float64"), prediction])

    def _fit(self, X: np.ndarray, y: np.ndarray) -> Any:
        from sklearn.ensemble import HistGradientBoostingRegressor

        numerical = len(self.settings.data.features.numerical)
        categorical = np.zeros(X.shape[1], dtype=bool)
        categorical[numerical : numerical + len(self.settings.data.features.categorical)] = True
        model = HistGradientBoostingRegressor(
            max_iter=100,
            learning_rate=0.1,
            min_samples_leaf=40,
            categorical_features=categorical,
            random_state=self.settings.data.seed,
        )
        return model.fit(X, y)

    @staticmethod
    def _predict(model: Any, X: np.ndarray) -> np.ndarray:
        estimate: np.ndarray = np.clip(np.asarray(model.predict(X), dtype="float64"), 0.0, None)
        return estimate

    def estimate(self, frame: pd.DataFrame) -> np.ndarray:
        """The expected loss of each row of ``frame`` (the folds' models averaged)."""
        if frame.empty:
            return np.empty(0)
        X = self._inputs(frame)
        estimate: np.ndarray = np.mean([self._predict(m, X) for m in self.models], axis=0)
        return estimate

    def window(self, frame: pd.DataFrame, *, reference: bool = False) -> LossWindow:
        """``frame``'s rows as a :class:`LossWindow` (the reference's estimate cross-fitted)."""
        target = self.settings.data.target
        if target in frame and len(frame):
            labels = pd.to_numeric(frame[target], errors="coerce").to_numpy(dtype="float64")
            observed = row_loss(self.metric, labels, frame[PREDICTION])
        else:
            observed = np.full(len(frame), np.nan)
        expected = self.reference_estimate if reference else self.estimate(frame)
        return LossWindow(observed, expected)
