"""Where MLflow keeps runs and models, and how models are (de)serialised.

By default the store is embedded: a SQLite file and an artifact folder inside the
project, ignored by git, which ``mlflow ui`` opens as is. ``MLFLOW_TRACKING_URI`` in the
environment points everything at a tracking server instead.
"""

from __future__ import annotations

import os
from typing import Any

from pipeline.settings import Settings

TRAINING_EXPERIMENT = "training"
MONITORING_EXPERIMENT = "monitoring"

# Types skops may load beyond its built-in safe list, reviewed for the three estimators
# the factory builds: numpy dtypes and the fitted tree structures of scikit-learn's
# forests and histogram gradient boosting. Any other type fails to load: a new estimator
# means reviewing `skops.io.get_untrusted_types` output and extending this list.
SKOPS_TRUSTED_TYPES = [
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
]

TELEMETRY_OFF = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "DVC_NO_ANALYTICS": "1",
    "EVIDENTLY_DISABLE_TELEMETRY": "1",
}


def disable_telemetry() -> None:
    """No tool phones home: these machines, and many users', have no internet."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)


# The URI configure() last set. MLflow copies it into MLFLOW_TRACKING_URI (so child
# processes inherit it); it must not then pass for the user's own setting, or the next
# project configured in this process would silently use the first one's store.
_configured_uri: str | None = None


def _user_uri() -> str | None:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    return None if not uri or uri == _configured_uri else uri


def tracking_uri(settings: Settings) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the embedded SQLite store under the project root."""
    return _user_uri() or f"sqlite:///{settings.path('mlflow.db')}"


def artifact_location(settings: Settings) -> str:
    return settings.path("mlartifacts").resolve().as_uri()


def configure(settings: Settings, experiment: str = TRAINING_EXPERIMENT) -> Any:
    """Point MLflow at the store and select ``experiment``, creating it if needed."""
    import mlflow

    global _configured_uri
    disable_telemetry()
    embedded = _user_uri() is None
    uri = tracking_uri(settings)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    _configured_uri = uri if embedded else None
    existing = mlflow.get_experiment_by_name(experiment)
    if existing is None:
        location = f"{artifact_location(settings)}/{experiment}" if embedded else None
        mlflow.create_experiment(experiment, artifact_location=location)
    return mlflow.set_experiment(experiment)


def champion_uri(settings: Settings) -> str:
    return f"models:/{settings.model.name}@{settings.promote.alias}"


def load_sklearn(uri: str) -> Any:
    """Load a scikit-learn model logged by the train stage (skops, reviewed trusted types)."""
    import mlflow.sklearn

    return mlflow.sklearn.load_model(uri)
