"""The drift job's pure core: compare a current window with the reference set.

``compare(reference, current, settings) -> Summary`` reads no file and writes none; the
job in :mod:`monitoring.drift_job` does the I/O. Evidently computes the data,
prediction and label drift (``DataDriftPreset`` and ``ValueDrift``, its default methods
unless ``params.yaml`` says otherwise) and the classification metrics for its report;
the dataset verdict weighs drifted columns by the champion's permutation importance;
missing values are compared here (a column Evidently cannot take, such as an empty one,
is a data-quality verdict rather than an error); performance is estimated and judged
by :mod:`monitoring.cbpe` and :mod:`monitoring.concept_drift`. Verdicts are read from
the Evidently tests (``include_tests=True``): without them a report has scores but no
verdict.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from monitoring import cbpe, concept_drift
from monitoring.capture.schema import MODEL_NAME, MODEL_VERSION, SERVED_COLUMNS
from monitoring.drift_summary import (
    ColumnVerdict,
    DataDrift,
    DataQuality,
    LabelDrift,
    MissingValues,
    ModelInfo,
    PredictionDrift,
    Rows,
    Sample,
    Summary,
)
from pipeline.labels import normalize_labels
from pipeline.schema import (
    PREDICTION,
    PROBA_PREFIX,
    SchemaError,
    coerce_features,
    proba_column,
)
from pipeline.settings import Settings

if TYPE_CHECKING:
    from monitoring.capture import WindowTotals

# Columns the capture log adds beside features and predictions; never compared.
CAPTURE_COLUMNS = SERVED_COLUMNS


def _classes(reference: pd.DataFrame, settings: Settings) -> list[str]:
    if settings.data.classes is not None:
        return list(settings.data.classes)
    names = [str(c) for c in reference.columns]
    return sorted(c.removeprefix(PROBA_PREFIX) for c in names if c.startswith(PROBA_PREFIX))


def _check_columns(reference: pd.DataFrame, current: pd.DataFrame, settings: Settings) -> None:
    """Fail early, naming the columns, when the two frames cannot be compared."""
    features = settings.data.features.all
    unknown = [c for c in settings.drift.columns if c not in features]
    if unknown:
        raise SchemaError(f"drift.columns names non-feature column(s): {', '.join(unknown)}")
    for name, frame in (("reference", reference), ("current", current)):
        missing = [c for c in features if c not in frame.columns]
        if missing:
            raise SchemaError(f"{name} data is missing feature column(s): {', '.join(missing)}")
    allowed = {*reference.columns, *CAPTURE_COLUMNS, settings.data.target}
    allowed |= {c for c in (settings.data.id, settings.data.timestamp) if c}
    unexpected = [c for c in current.columns if c not in allowed]
    if unexpected:
        raise SchemaError(
            f"current data has column(s) the reference set does not: {', '.join(unexpected)}"
        )
    needed = [PREDICTION, *(proba_column(c) for c in _classes(reference, settings))]
    for name, frame in (("reference", reference), ("current", current)):
        absent = [c for c in needed if c not in frame.columns]
        if absent:
            raise SchemaError(f"{name} data has no prediction column(s): {', '.join(absent)}")
    if settings.data.target not in reference.columns:
        raise SchemaError(f"reference data has no label column: {settings.data.target}")


def _check_classes(labels: Iterable[Any], column: str, classes: list[str]) -> None:
    """A label outside the model's classes is a data error, named, not a metric's crash."""
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        shown = ", ".join(repr(v)[:40] for v in unknown[:5])
        raise SchemaError(
            f"current data's label column {column!r} holds {len(unknown)} value(s) that are "
            f"not classes of the model {classes}: {shown}"
        )


def _plain(frame: pd.DataFrame, settings: Settings, classes: list[str]) -> pd.DataFrame:
    """Features, predictions and label with plain dtypes Evidently does not silently skip."""
    out = coerce_features(frame, settings.data)
    for label in classes:
        out[proba_column(label)] = frame[proba_column(label)].astype("float64")
    out[PREDICTION] = normalize_labels(frame[PREDICTION])
    target = settings.data.target
    if target in frame.columns:
        out[target] = normalize_labels(frame[target])
    else:
        out[target] = pd.Series(None, index=frame.index, dtype=object)
    return out


def _model_info(current: pd.DataFrame, settings: Settings) -> ModelInfo:
    names, versions = (
        set(current[c].dropna().astype(str).unique()) if c in current else set()
        for c in (MODEL_NAME, MODEL_VERSION)
    )
    return _model_named(names, versions, settings)


def _model_named(names: set[str], versions: set[str], settings: Settings) -> ModelInfo:
    return ModelInfo(
        name=",".join(sorted(names)) or settings.model.name,
        version=",".join(sorted(versions)) or "unknown",
    )


def _stattest(method: str, numerical: bool) -> Any:
    from evidently import ColumnType
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest

    kind = ColumnType.Numerical if numerical else ColumnType.Categorical
    return get_registered_stattest(method, kind)


def _check_methods(settings: Settings) -> None:
    """A drift method Evidently does not know fails now, naming the params.yaml key."""
    numerical = set(settings.data.features.numerical)
    drift = settings.drift
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
            _stattest(method, is_numerical)
        except Exception as error:
            raise SchemaError(
                f"{key}: {method!r} is not an Evidently drift method: {error}"
            ) from None


def _display_name(method: str, numerical: bool) -> str:
    """Evidently's readable name ('K-S p_value') whether the method was chosen or defaulted."""
    try:
        return str(_stattest(method, numerical).display_name)
    except Exception:
        return method


def _verdicts(snapshot: Any, numerical: set[str]) -> dict[str, ColumnVerdict]:
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
            method=_display_name(str(config["method"]), column in numerical),
            score=float(metric["value"]),
            threshold=float(config["threshold"]),
            detected=metric["id"] in failed,
        )
    return verdicts


def _drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    settings: Settings,
    prediction_columns: list[str],
    compared: list[str],
) -> Any:
    """Evidently's report on every current row: data drift of the ``compared`` features
    plus prediction drift."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    drift, features = settings.drift, settings.data.features
    columns = drift.columns
    preset = DataDriftPreset(
        columns=compared,
        drift_share=drift.drift_share,
        method=drift.method,
        threshold=drift.threshold,
        per_column_method={c: s.method for c, s in columns.items() if s.method} or None,
        per_column_threshold={c: s.threshold for c, s in columns.items() if s.threshold} or None,
    )
    predictions = [
        ValueDrift(column=c, method=drift.prediction_method, threshold=drift.prediction_threshold)
        for c in prediction_columns
    ]
    probas = [c for c in prediction_columns if c != PREDICTION]
    definition = DataDefinition(
        numerical_columns=[*(c for c in features.numerical if c in compared), *probas],
        categorical_columns=[*(c for c in features.categorical if c in compared), PREDICTION],
    )
    keep = [*compared, *prediction_columns]
    report = Report([preset, *predictions], include_tests=True)
    return report.run(
        Dataset.from_pandas(current[keep], data_definition=definition),
        Dataset.from_pandas(reference[keep], data_definition=definition),
    )


def _performance_report(
    reference: pd.DataFrame, labeled: pd.DataFrame, settings: Settings, classes: list[str]
) -> Any:
    """Evidently's classification report and label drift, on the labeled rows only."""
    from evidently import (
        BinaryClassification,
        DataDefinition,
        Dataset,
        MulticlassClassification,
        Report,
    )
    from evidently.metrics import ValueDrift
    from evidently.presets import ClassificationPreset

    target = settings.data.target
    # Multiclass: Evidently takes the predicted label as the name of the most probable
    # probability column (``idxmax``) and matches it against the labels, so the columns
    # must be named by the classes themselves ("gold", not "proba_gold"), or every label
    # is unknown ("At least one label specified must be in y_true").
    names = {proba_column(c): proba_column(c) for c in classes}
    if len(classes) > 2:
        clash = [c for c in classes if c in (PREDICTION, target)]
        if clash:
            raise SchemaError(f"a class is named like a column: {', '.join(clash)}")
        names = {proba_column(c): c for c in classes}
    probas = list(names.values())
    classification: Any
    if len(classes) == 2:
        classification = BinaryClassification(
            target=target,
            prediction_labels=PREDICTION,
            prediction_probas=proba_column(classes[-1]),
            pos_label=classes[-1],
        )
    else:
        classification = MulticlassClassification(
            target=target,
            prediction_labels=PREDICTION,
            prediction_probas=probas,
            labels={c: c for c in classes},
        )
    definition = DataDefinition(
        numerical_columns=probas,
        categorical_columns=[PREDICTION, target],
        classification=[classification],
    )
    keep = [*names, PREDICTION, target]
    labeled, reference = (f[keep].rename(columns=names) for f in (labeled, reference))
    report = Report(
        [
            ValueDrift(
                column=target, method=settings.drift.method, threshold=settings.drift.threshold
            ),
            ClassificationPreset(),
        ],
        include_tests=True,
    )
    return report.run(
        Dataset.from_pandas(labeled, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )


def importance_weights(
    importance: dict[str, float] | None, features: list[str]
) -> dict[str, float] | None:
    """Permutation importances as weights summing to 1: negative ones (shuffling helped,
    i.e. noise) count 0. ``None`` when there is nothing to weigh by."""
    if not importance:
        return None
    clipped = {c: max(float(importance.get(c, 0.0)), 0.0) for c in features}
    total = sum(clipped.values())
    return {c: v / total for c, v in clipped.items()} if total > 0 else None


def _missing_values(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    settings: Settings,
    totals: WindowTotals | None = None,
) -> DataQuality:
    """Missing-value share per feature, flagged when it rose by more than the knob allows;
    on the whole window when its ``totals`` are given (``current`` may be a sample)."""
    allowed = settings.drift.max_missing_increase
    columns = {}
    for column in settings.data.features.all:
        before = float(reference[column].isna().mean())
        if totals is not None:
            now = totals.missing[column] / totals.rows
        else:
            now = float(current[column].isna().mean())
        columns[column] = MissingValues(
            reference=before, current=now, detected=now - before > allowed
        )
    return DataQuality(
        detected=any(v.detected for v in columns.values()),
        max_missing_increase=allowed,
        columns=columns,
    )


def reference_slices(reference: pd.DataFrame, settings: Settings) -> list[np.ndarray]:
    """Subpopulations of the reference cut by one feature each: ``drift.slices`` quantile
    bins of a numerical feature, and each category holding at least 1/``drift.slices`` of
    the rows. On them CBPE's bias under a covariate shift is measured."""
    count, slices = settings.drift.slices, []
    for column in settings.data.features.numerical:
        values = reference[column]
        if values.notna().sum() == 0:
            continue
        bins = pd.qcut(values, q=count, duplicates="drop")
        slices += [(bins == b).to_numpy() for b in bins.cat.categories]
    for column in settings.data.features.categorical:
        shares = reference[column].value_counts(normalize=True)
        slices += [(reference[column] == c).to_numpy() for c in shares.index[shares >= 1 / count]]
    return [s for s in slices if 0 < s.sum() < len(reference)]


def _comparable(frame: pd.DataFrame, column: str) -> bool:
    """Evidently refuses a column with no value at all ("An empty column was provided")."""
    return bool(frame[column].notna().any())


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    settings: Settings,
    model: ModelInfo | None = None,
    importance: dict[str, float] | None = None,
    *,
    labeled: pd.DataFrame | None = None,
    totals: WindowTotals | None = None,
) -> Summary:
    """Judge the current window against the reference set.

    Both frames hold the features, ``prediction`` and ``proba_<class>``; the reference
    also the label, the current one the label where it has joined (missing otherwise).
    ``importance`` is the champion's permutation importance per feature (the evaluate
    stage's file); without it every column weighs the same.

    A window too large to hold comes as a sample (:class:`monitoring.capture.WindowSample`):
    ``current`` a uniform sample of its rows (data, prediction drift and the performance
    estimate), ``labeled`` one of its labeled rows (realized performance, concept and label
    drift; default: the labeled rows of ``current``) and ``totals`` the whole window's row
    counts, missing values, model versions and labels (default: counted on ``current``).
    Raises :class:`SchemaError` naming the columns when the frames do not match.
    """
    classes = _classes(reference, settings)
    if current.empty:
        # An empty window (nothing served yet) has no say in which columns exist.
        current = reference.iloc[0:0].drop(columns=settings.data.target)
    _check_columns(reference, current, settings)
    _check_methods(settings)
    ref, cur = _plain(reference, settings, classes), _plain(current, settings, classes)
    target = settings.data.target
    if labeled is None or labeled.empty:
        lab = cur[cur[target].notna()]
    else:
        _check_columns(reference, labeled, settings)
        lab = _plain(labeled, settings, classes)
        lab = lab[lab[target].notna()]
    labels = totals.labels if totals is not None else set(lab[target])
    _check_classes(labels, target, classes)
    rows = Rows(
        reference=len(ref),
        current=totals.rows if totals is not None else len(cur),
        labeled=totals.labeled if totals is not None else len(lab),
    )
    drift = settings.drift
    performance, concept = concept_drift.no_verdict(settings, rows.labeled)
    if model is None:
        model = (
            _model_info(current, settings)
            if totals is None
            else _model_named(totals.model_names, totals.model_versions, settings)
        )
    summary = Summary(
        status="ok" if rows.current >= drift.min_rows else "insufficient_data",
        rows=rows,
        sample=Sample(
            sample_rows=len(cur),
            window_rows=rows.current,
            labeled_sample_rows=len(lab),
            labeled_window_rows=rows.labeled,
            max_rows=drift.sample_rows,
            seed=settings.data.seed,
        ),
        data_drift=DataDrift(drift_share=drift.drift_share),
        prediction_drift=PredictionDrift(),
        label_drift=LabelDrift(),
        performance=performance,
        concept_drift=concept,
        data_quality=DataQuality(max_missing_increase=drift.max_missing_increase),
        model=model,
    )
    if summary.status != "ok":
        return summary

    features = settings.data.features.all
    quality = _missing_values(ref, cur, settings, totals)
    summary.data_quality = quality
    compared = [c for c in features if _comparable(ref, c) and _comparable(cur, c)]
    # Binary: the positive class's probability says it all; the other is its mirror.
    probas = [proba_column(c) for c in (classes[-1:] if len(classes) == 2 else classes)]
    snapshot = _drift_report(ref, cur, settings, [*probas, PREDICTION], compared)
    numerical = {*settings.data.features.numerical, *probas}
    verdicts = _verdicts(snapshot, numerical)
    weights = importance_weights(importance, features)
    columns = {}
    for column in features:
        missing = quality.columns[column]
        verdict = verdicts.get(column) or ColumnVerdict(
            # No values on one side: nothing to compare, and all of it changed.
            method="missing values",
            score=abs(missing.current - missing.reference),
            threshold=drift.max_missing_increase,
            detected=True,
        )
        columns[column] = verdict.model_copy(
            update={
                "importance": weights[column] if weights else None,
                "missing_share": missing.current,
            }
        )
    uniform = {c: 1 / len(features) for c in features}
    share = sum(v.detected for v in columns.values()) / len(columns)
    weighted = sum((weights or uniform)[c] for c, v in columns.items() if v.detected)
    summary.data_drift = DataDrift(
        detected=weighted >= drift.drift_share,
        share=share,
        weighted_share=weighted,
        weights="importance" if weights else "uniform",
        drift_share=drift.drift_share,
        columns=columns,
    )
    predicted = {c: verdicts[c] for c in [*probas, PREDICTION]}
    main = predicted[probas[0]]
    summary.prediction_drift = PredictionDrift(
        detected=any(v.detected for v in predicted.values()),
        method=main.method,
        score=main.score,
        threshold=main.threshold,
        columns=predicted,
    )
    summary._snapshots["report"] = snapshot

    reference_rows = cbpe.window(ref, classes, target)
    calibrate = cbpe.Calibrator(reference_rows.proba, reference_rows.onehot)
    summary.performance, summary.concept_drift = concept_drift.judge(
        cbpe.window(ref, classes, target, calibrate),
        cbpe.window(cur, classes, target, calibrate),
        cbpe.window(lab, classes, target, calibrate),
        reference_slices(ref, settings),
        settings,
        labeled_rows=rows.labeled,
    )
    if summary.rows.labeled >= drift.min_labeled_rows:
        report = _performance_report(ref, lab, settings, classes)
        label = _verdicts(report, set())[target]
        summary.label_drift = LabelDrift(
            detected=label.detected,
            method=label.method,
            score=label.score,
            threshold=label.threshold,
        )
        summary._snapshots["performance"] = report
    return summary
