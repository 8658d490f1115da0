"""The model factory: one scikit-learn ``Pipeline`` for every estimator ``params.yaml`` names,
classifier or regressor by ``data.task``, and the layout of its outputs: a predicted label
and one probability column per class, or a predicted number and its interval's bounds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipeline.interval import Interval
from pipeline.labels import normalize_label
from pipeline.schema import INTERVAL_LOWER, INTERVAL_UPPER, PREDICTION, proba_columns
from pipeline.settings import Features, TrainSettings
from pipeline.tasks import Task

MISSING_CATEGORY = "__missing__"


# The estimator of each name, per task (the settings refuse a name the task has not).
ESTIMATORS: dict[str, dict[str, Any]] = {
    "classification": {
        "hist_gradient_boosting": HistGradientBoostingClassifier,
        "random_forest": RandomForestClassifier,
        "logistic_regression": LogisticRegression,
    },
    "regression": {
        "hist_gradient_boosting": HistGradientBoostingRegressor,
        "random_forest": RandomForestRegressor,
        "ridge": Ridge,
    },
}


def _estimator(train: TrainSettings, seed: int, task: Task) -> Any:
    estimator = ESTIMATORS[task][train.estimator]
    return estimator(random_state=seed, **train.hyperparameters())


def build_model(
    features: Features, train: TrainSettings, seed: int, task: Task = "classification"
) -> Pipeline:
    """An unfitted pipeline: impute, scale and one-hot encode, then the chosen estimator.

    Unknown categories are ignored by the encoder (all-zero one-hot), so the model itself
    can take them; whether the service accepts them is a serving decision.
    """
    numerical = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(
        SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
    )
    columns = ColumnTransformer(
        [
            ("numerical", numerical, features.numerical),
            ("categorical", categorical, features.categorical),
        ],
        verbose_feature_names_out=False,
    )
    return Pipeline([("features", columns), ("estimator", _estimator(train, seed, task))])


def predict_frame(model: Any, X: pd.DataFrame, interval: Interval | None = None) -> pd.DataFrame:
    """The service's output columns, as the capture log stores them: the predicted label and
    one probability column per class, or (a regressor) the predicted number and, with an
    ``interval``, its bounds.

    The evaluate stage writes the reference set with it and the drift job scores rows
    that arrive without predictions with it, so both have the service's columns.
    """
    if is_regressor(model):
        prediction = np.asarray(model.predict(X), dtype="float64")
        out = pd.DataFrame({PREDICTION: prediction}, index=X.index)
        if interval is not None:
            out[INTERVAL_LOWER], out[INTERVAL_UPPER] = interval.bounds(prediction)
        return out
    proba = model.predict_proba(X)
    classes = [normalize_label(c) for c in model.classes_]
    out = pd.DataFrame(proba, columns=proba_columns(classes), index=X.index)
    out.insert(0, PREDICTION, np.asarray(classes, dtype=object)[proba.argmax(axis=1)])
    return out
