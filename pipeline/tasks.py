"""The two tasks mlstack trains, serves and monitors, and what belongs to each.

``data.task`` in ``params.yaml`` names one; the settings check that the estimator and the
metrics named elsewhere fit it, and the gate and the drift job read each metric's direction
here.
"""

from __future__ import annotations

from typing import Literal

Task = Literal["classification", "regression"]

# Which metrics score which task, and whether higher is better.
TASK_METRICS: dict[str, dict[str, bool]] = {
    "classification": {"roc_auc": True, "accuracy": True, "f1": True, "log_loss": False},
    "regression": {"rmse": False, "mae": False, "r2": True, "mape": False},
}
HIGHER_IS_BETTER: dict[str, bool] = {
    m: h for task in TASK_METRICS.values() for m, h in task.items()
}

# The estimators that exist for one task only; the others have a classifier and a regressor.
ESTIMATOR_TASK: dict[str, str] = {"logistic_regression": "classification", "ridge": "regression"}
