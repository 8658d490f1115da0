"""Evidently's part of the drift job: its drift methods, the reports it runs, and the
per-column verdicts read out of a report's tests.

Evidently is imported inside the functions that use it: importing it takes about 5 s on
2 cores, and ``monitoring.drift`` is imported by commands and tests that never run a
report (a window too small to judge returns before any).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from monitoring.drift_summary import ColumnVerdict
from pipeline.schema import PREDICTION, SchemaError, proba_column
from pipeline.settings import Settings

if TYPE_CHECKING:
    from monitoring.calibration import Calibrated


def stattest(method: str, numerical: bool) -> Any:
    """Evidently's drift method of that name, for a numerical or categorical column."""
    from evidently import ColumnType
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest

    kind = ColumnType.Numerical if numerical else ColumnType.Categorical
    return get_registered_stattest(method, kind)


def check_methods(settings: Settings) -> None:
    """A ``drift.columns`` key that is no feature, or a drift method Evidently does not
    know, fails now, naming the params.yaml key."""
    numerical = set(settings.data.features.numerical)
    drift = settings.drift
    features = settings.data.features.all
    unknown = [c for c in drift.columns if c not in features]
    if unknown:
        raise SchemaError(
            f"drift.columns: {', '.join(unknown)} is not a feature column "
            f"(data.features lists {', '.join(features)})"
        )
    checks = [
        (f"drift.columns.{c}.method", s.method, c in numerical) for c, s in drift.columns.items()
    ]
    for column in settings.data.features.all:
        checks.append(("drift.method", drift.method, column in numerical))
    checks.append(("drift.prediction_method", drift.prediction_method, True))
    for key, method, is_numerical in checks:
        if method is None:
            continue
        try:
            stattest(method, is_numerical)
        except Exception as error:
            raise SchemaError(
                f"{key}: {method!r} is not an Evidently drift method: {error}"
            ) from None


def display_name(method: str, numerical: bool) -> str:
    """Evidently's readable name ('K-S p_value') whether the method was chosen or defaulted."""
    try:
        return str(stattest(method, numerical).display_name)
    except Exception:
        return method


def verdicts(snapshot: Any, numerical: set[str]) -> dict[str, ColumnVerdict]:
    """Per-column drift verdicts out of a snapshot: config, score and the test's status."""
    content = snapshot.dict()
    failed = {
        test["metric_config"]["metric_id"]
        for test in content.get("tests", [])
        if test.get("id") == "drift" and test.get("status") == "FAIL"
    }
    verdicts = {}
    for metric in content["metrics"]:
        config = metric["config"]
        if not config["type"].endswith(":ValueDrift"):
            continue
        column = config["column"]
        verdicts[column] = ColumnVerdict(
            method=display_name(str(config["method"]), column in numerical),
            score=float(metric["value"]),
            threshold=float(config["threshold"]),
            detected=metric["id"] in failed,
        )
    return verdicts


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    settings: Settings,
    prediction_columns: list[str],
    compared: list[str],
    calibrated: Calibrated | None = None,
) -> Any:
    """Evidently's report on every current row: data drift of the ``compared`` features
    plus prediction drift, with the ``calibrated`` methods and thresholds where given.
    Reference rows without predictions (the training rows) count for data drift only:
    Evidently leaves a column's missing values out of its drift."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    drift, features = settings.drift, settings.data.features
    columns = drift.columns
    methods = {c: s.method for c, s in columns.items() if s.method}
    thresholds = {c: s.threshold for c, s in columns.items() if s.threshold}
    if calibrated is not None:
        methods |= calibrated.methods
        thresholds |= calibrated.thresholds
    preset = DataDriftPreset(
        columns=compared,
        drift_share=drift.drift_share,
        method=drift.method,
        threshold=drift.threshold,
        per_column_method=methods or None,
        per_column_threshold=thresholds or None,
    )
    predictions = [
        ValueDrift(column=c, method=drift.prediction_method, threshold=drift.prediction_threshold)
        for c in prediction_columns
    ]
    # A class label is categorical; probabilities, and a regressor's prediction, are numbers.
    numbers = [c for c in prediction_columns if c != PREDICTION or settings.data.is_regression]
    labels = [c for c in prediction_columns if c not in numbers]
    definition = DataDefinition(
        numerical_columns=[*(c for c in features.numerical if c in compared), *numbers],
        categorical_columns=[*(c for c in features.categorical if c in compared), *labels],
    )
    keep = [*compared, *prediction_columns]
    report = Report([preset, *predictions], include_tests=True)
    return report.run(
        Dataset.from_pandas(current[keep], data_definition=definition),
        Dataset.from_pandas(reference[keep], data_definition=definition),
    )


def _proba_names(classes: list[str], target: str) -> dict[str, str]:
    """The probability columns as Evidently's classification must see them.

    Multiclass: Evidently takes the predicted label as the name of the most probable
    probability column (``idxmax``) and matches it against the labels, so the columns
    must be named by the classes themselves ("gold", not "proba_gold"), or every label
    is unknown ("At least one label specified must be in y_true")."""
    if len(classes) <= 2:
        return {proba_column(c): proba_column(c) for c in classes}
    clash = [c for c in classes if c in (PREDICTION, target)]
    if clash:
        raise SchemaError(f"a class is named like a column: {', '.join(clash)}")
    return {proba_column(c): c for c in classes}


def _classification(classes: list[str], target: str, probas: list[str]) -> Any:
    """Evidently's binary (positive class: the last) or multiclass task definition."""
    from evidently import BinaryClassification, MulticlassClassification

    if len(classes) == 2:
        return BinaryClassification(
            target=target,
            prediction_labels=PREDICTION,
            prediction_probas=proba_column(classes[-1]),
            pos_label=classes[-1],
        )
    return MulticlassClassification(
        target=target,
        prediction_labels=PREDICTION,
        prediction_probas=probas,
        labels={c: c for c in classes},
    )


def performance_report(
    reference: pd.DataFrame, labeled: pd.DataFrame, settings: Settings, classes: list[str]
) -> Any:
    """Evidently's classification report and label drift, on the labeled rows only."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import ClassificationPreset

    target = settings.data.target
    names = _proba_names(classes, target)
    probas = list(names.values())
    definition = DataDefinition(
        numerical_columns=probas,
        categorical_columns=[PREDICTION, target],
        classification=[_classification(classes, target, probas)],
    )
    keep = [*names, PREDICTION, target]
    labeled, reference = (f[keep].rename(columns=names) for f in (labeled, reference))
    label = ValueDrift(
        column=target, method=settings.drift.method, threshold=settings.drift.threshold
    )
    report = Report([label, ClassificationPreset()], include_tests=True)
    return report.run(
        Dataset.from_pandas(labeled, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )


def regression_report(reference: pd.DataFrame, labeled: pd.DataFrame, settings: Settings) -> Any:
    """Evidently's regression report and the target's drift, on the labeled rows only."""
    from evidently import DataDefinition, Dataset, Regression, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import RegressionPreset

    target = settings.data.target
    definition = DataDefinition(
        numerical_columns=[PREDICTION, target],
        regression=[Regression(target=target, prediction=PREDICTION)],
    )
    keep = [PREDICTION, target]
    label = ValueDrift(
        column=target, method=settings.drift.method, threshold=settings.drift.threshold
    )
    report = Report([label, RegressionPreset()], include_tests=True)
    return report.run(
        Dataset.from_pandas(labeled[keep], data_definition=definition),
        Dataset.from_pandas(reference[keep], data_definition=definition),
    )
