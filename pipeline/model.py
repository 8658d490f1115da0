"""The model factory: one scikit-learn ``Pipeline`` for every estimator ``params.yaml`` names,
and the layout of its outputs (predicted label, one probability column per class)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipeline.labels import normalize_label
from pipeline.schema import PREDICTION, proba_columns
from pipeline.settings import Features, TrainSettings

MISSING_CATEGORY = "__missing__"


def _estimator(train: TrainSettings, seed: int) -> Any:
    params = train.hyperparameters()
    if train.estimator == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(random_state=seed, **params)
    if train.estimator == "logistic_regression":
        return LogisticRegression(random_state=seed, **params)
    return RandomForestClassifier(random_state=seed, **params)


def build_model(features: Features, train: TrainSettings, seed: int) -> Pipeline:
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
    return Pipeline([("features", columns), ("estimator", _estimator(train, seed))])


def predict_frame(model: Any, X: pd.DataFrame) -> pd.DataFrame:
    """Predicted label and one probability column per class, as the capture log stores them.

    The evaluate stage writes the reference set with it and the drift job scores rows
    that arrive without predictions with it, so both have the service's columns.
    """
    proba = model.predict_proba(X)
    classes = [normalize_label(c) for c in model.classes_]
    out = pd.DataFrame(proba, columns=proba_columns(classes), index=X.index)
    out.insert(0, PREDICTION, np.asarray(classes, dtype=object)[proba.argmax(axis=1)])
    return out
