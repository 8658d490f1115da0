"""The drift job's pure core: compare a current window with the reference set.

``compare(reference, current, settings) -> Summary`` reads no file and writes none; the
job in :mod:`monitoring.drift_job` does the I/O. Evidently (:mod:`monitoring.drift_reports`)
computes the data,
prediction and label drift (``DataDriftPreset`` and ``ValueDrift``, its default methods
unless ``params.yaml`` says otherwise) and the classification metrics for its report;
the dataset verdict weighs drifted columns by the champion's permutation importance;
missing values are compared here (a column Evidently cannot take, such as an empty one,
is a data-quality verdict rather than an error); performance is estimated and judged
by :mod:`monitoring.cbpe` and :mod:`monitoring.concept_drift`. Verdicts are read from
the Evidently tests (``include_tests=True``): without them a report has scores but no
verdict. Each summary section has its builder here (:func:`data_quality`,
:func:`data_drift`, :func:`prediction_drift`, :func:`performance_and_concept`,
:func:`label_drift`); :func:`compare` checks the frames and calls them in turn.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from monitoring import calibration, cbpe, concept_drift, drift_reports, multivariate, regression
from monitoring.drift_summary import (
    ColumnVerdict,
    ConceptDrift,
    DataDrift,
    DataQuality,
    LabelDrift,
    MissingValues,
    ModelInfo,
    Performance,
    PredictionDrift,
    Rows,
    Sample,
    Summary,
)
from monitoring.served_model import served_model
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

# A weighted share within this of ``drift.drift_share`` is equal to it (float sums).
SHARE_ROUNDING = 1e-9
# Columns the capture log adds beside features and predictions; never compared.
CAPTURE_COLUMNS = ("request_id", "timestamp", "model_name", "model_version")


def _classes(reference: pd.DataFrame, settings: Settings) -> list[str]:
    if settings.data.classes is not None:
        return list(settings.data.classes)
    names = [str(c) for c in reference.columns]
    return sorted(c.removeprefix(PROBA_PREFIX) for c in names if c.startswith(PROBA_PREFIX))


def _check_columns(reference: pd.DataFrame, current: pd.DataFrame, settings: Settings) -> None:
    """Fail early, naming the columns, when the two frames cannot be compared."""
    features = settings.data.features.all
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


def _plain(
    frame: pd.DataFrame, settings: Settings, classes: list[str], name: str = "current"
) -> pd.DataFrame:
    """Features, predictions and label with plain dtypes Evidently does not silently skip."""
    if settings.data.is_regression:
        return regression.plain(frame, settings, name)
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


def data_quality(
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


def drift_reference(
    reference: pd.DataFrame,
    ref: pd.DataFrame,
    inputs: pd.DataFrame | None,
    settings: Settings,
) -> tuple[pd.DataFrame, bool]:
    """The rows data drift compares against: the reference set ``ref`` (plain), followed
    with ``drift.reference: all`` by the training rows' features (``inputs``; their
    prediction and label columns missing). With ``data.timestamp`` in both they are put
    in time order, and the second value is ``True``: the calibration then also draws
    stretches of the period (:mod:`monitoring.calibration`)."""
    data = settings.data
    frames, sources = [ref], [reference]
    if settings.drift.reference == "all" and inputs is not None and not inputs.empty:
        missing = [c for c in data.features.all if c not in inputs.columns]
        if missing:
            raise SchemaError(
                f"training inputs are missing feature column(s): {', '.join(missing)}"
            )
        frames.append(coerce_features(inputs, data))
        sources.append(inputs)
    combined = pd.concat(frames, ignore_index=True)
    stamp = data.timestamp
    if stamp is None or any(stamp not in source.columns for source in sources):
        return combined, False
    order = pd.concat([source[stamp] for source in sources], ignore_index=True)
    try:
        ordered = order.sort_values(kind="stable").index
    except TypeError:  # values that do not sort (mixed types): no order to draw stretches by
        return combined, False
    return combined.loc[ordered].reset_index(drop=True), True


def calibrated_verdicts(
    verdicts: dict[str, ColumnVerdict], calibrated: calibration.Calibrated
) -> dict[str, ColumnVerdict]:
    """The verdicts, those of calibrated columns with their p-value."""
    out = dict(verdicts)
    for column in calibrated.thresholds:
        if column in out:
            verdict = out[column]
            p_value = calibrated.p_value(column, verdict.score)
            out[column] = verdict.model_copy(update={"calibrated": True, "p_value": p_value})
    return out


def data_drift(
    verdicts: dict[str, ColumnVerdict],
    quality: DataQuality,
    importance: dict[str, float] | None,
    settings: Settings,
) -> DataDrift:
    """The dataset verdict: drifted columns weighted by the champion's importance, drift
    when they weigh MORE than ``drift.drift_share`` (a share equal to it, within float
    rounding, is none). A column Evidently could not compare (no values on one side)
    counts as drifted."""
    drift, features = settings.drift, settings.data.features.all
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
    return DataDrift(
        detected=weighted - drift.drift_share > SHARE_ROUNDING,
        share=share,
        weighted_share=weighted,
        weights="importance" if weights else "uniform",
        drift_share=drift.drift_share,
        columns=columns,
    )


def prediction_drift(verdicts: dict[str, ColumnVerdict], probas: list[str]) -> PredictionDrift:
    """Drift of the probabilities and the predicted label; the first probability speaks
    for the section's method and score."""
    predicted = {c: verdicts[c] for c in [*probas, PREDICTION]}
    main = predicted[(probas or [PREDICTION])[0]]  # a regressor: its predicted number
    return PredictionDrift(
        detected=any(v.detected for v in predicted.values()),
        method=main.method,
        score=main.score,
        threshold=main.threshold,
        columns=predicted,
    )


def performance_and_concept(
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    lab: pd.DataFrame,
    settings: Settings,
    classes: list[str],
    labeled_rows: int,
) -> tuple[Performance, ConceptDrift]:
    """The performance estimate and, with labels, the realized metric and concept drift,
    on probabilities calibrated on the reference."""
    target = settings.data.target
    reference_rows = cbpe.window(ref, classes, target)
    calibrate = cbpe.Calibrator(reference_rows.proba, reference_rows.onehot)
    return concept_drift.judge(
        cbpe.window(ref, classes, target, calibrate),
        cbpe.window(cur, classes, target, calibrate),
        cbpe.window(lab, classes, target, calibrate),
        reference_slices(ref, settings),
        settings,
        labeled_rows=labeled_rows,
    )


def label_drift(
    ref: pd.DataFrame, lab: pd.DataFrame, settings: Settings, classes: list[str]
) -> tuple[LabelDrift, Any]:
    """Drift of the labels, and Evidently's classification report it comes with."""
    report = drift_reports.performance_report(ref, lab, settings, classes)
    label = drift_reports.verdicts(report, set())[settings.data.target]
    verdict = LabelDrift(
        detected=label.detected,
        method=label.method,
        score=label.score,
        threshold=label.threshold,
    )
    return verdict, report


def _labeled(
    reference: pd.DataFrame,
    cur: pd.DataFrame,
    labeled: pd.DataFrame | None,
    settings: Settings,
    classes: list[str],
) -> pd.DataFrame:
    """The labeled rows the realized verdicts use: ``labeled``, else those of ``cur``."""
    target = settings.data.target
    if labeled is None or labeled.empty:
        return cur[cur[target].notna()]
    _check_columns(reference, labeled, settings)
    lab = _plain(labeled, settings, classes)
    return lab[lab[target].notna()]


def _unjudged(
    rows: Rows, sample_rows: int, labeled_sample_rows: int, model: ModelInfo, settings: Settings
) -> Summary:
    """The summary before any verdict: counts, the sample, the settings each section uses."""
    drift = settings.drift
    performance, concept = concept_drift.no_verdict(settings, rows.labeled)
    return Summary(
        status="ok" if rows.current >= drift.min_rows else "insufficient_data",
        rows=rows,
        sample=Sample(
            sample_rows=sample_rows,
            window_rows=rows.current,
            labeled_sample_rows=labeled_sample_rows,
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


def _rows(
    ref: pd.DataFrame, cur: pd.DataFrame, lab: pd.DataFrame, totals: WindowTotals | None
) -> Rows:
    """The row counts: the whole window's when it came as a sample (``totals``)."""
    if totals is None:
        return Rows(reference=len(ref), current=len(cur), labeled=len(lab))
    return Rows(reference=len(ref), current=totals.rows, labeled=totals.labeled)


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    settings: Settings,
    model: ModelInfo | None = None,
    importance: dict[str, float] | None = None,
    *,
    labeled: pd.DataFrame | None = None,
    totals: WindowTotals | None = None,
    inputs: pd.DataFrame | None = None,
    cache: Path | None = None,
) -> Summary:
    """Judge the current window against the reference set.

    Both frames hold the features, ``prediction`` and ``proba_<class>``; the reference
    also the label, the current one the label where it has joined (missing otherwise).
    ``importance`` is the champion's permutation importance per feature (the evaluate
    stage's file); without it every column weighs the same. ``model`` is the model that
    served the window (default: :func:`monitoring.served_model.served_model` on
    ``current``, the rule the job re-scores the reference by).

    A window too large to hold comes as a sample (:class:`monitoring.capture.WindowSample`):
    ``current`` a uniform sample of its rows (data and prediction drift, the estimate),
    ``labeled`` one of its labeled rows (default: those of ``current``) and ``totals`` the
    whole window's counts (default: counted on ``current``). ``inputs`` are the training
    rows' features: with ``drift.reference: all`` input distributions are compared with
    them and the reference set together (:func:`drift_reference`). Column thresholds are
    calibrated on those rows (:mod:`monitoring.calibration`), kept in ``cache`` between
    runs. Raises :class:`SchemaError` naming the columns when the frames do not match.
    """
    classes = _classes(reference, settings)
    if current.empty:
        # An empty window (nothing served yet) has no say in which columns exist.
        current = reference.iloc[0:0].drop(columns=settings.data.target)
    _check_columns(reference, current, settings)
    drift_reports.check_methods(settings)
    ref = _plain(reference, settings, classes, "reference")
    cur = _plain(current, settings, classes)
    target = settings.data.target
    lab = _labeled(reference, cur, labeled, settings, classes)
    if not settings.data.is_regression:
        _check_classes(totals.labels if totals is not None else set(lab[target]), target, classes)
    rows = _rows(ref, cur, lab, totals)
    if model is None:
        model = served_model(current, settings.model.name) or ModelInfo(name=settings.model.name)
    summary = _unjudged(rows, len(cur), len(lab), model, settings)
    if summary.status != "ok":
        return summary

    _judge_drift(summary, reference, ref, cur, inputs, importance, settings, classes, cache, totals)
    _judge_performance(summary, ref, cur, lab, settings, classes)
    return summary


def _judge_drift(
    summary: Summary,
    reference: pd.DataFrame,
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    inputs: pd.DataFrame | None,
    importance: dict[str, float] | None,
    settings: Settings,
    classes: list[str],
    cache: Path | None,
    totals: WindowTotals | None,
) -> None:
    """The data-quality, data-drift and prediction-drift sections."""
    features = settings.data.features.all
    inputs_ref, ordered = drift_reference(reference, ref, inputs, settings)
    summary.data_quality = data_quality(inputs_ref, cur, settings, totals)
    compared = [c for c in features if _comparable(inputs_ref, c) and _comparable(cur, c)]
    # Binary: the positive class's probability says it all; the other is its mirror.
    probas = [proba_column(c) for c in (classes[-1:] if len(classes) == 2 else classes)]
    numbers = {*settings.data.features.numerical, *probas}
    if settings.data.is_regression:
        numbers.add(PREDICTION)
    calibrated = calibration.calibrate(
        inputs_ref,
        len(cur),
        settings,
        calibration.calibrated_columns(settings, compared),
        cache,
        ordered=ordered,
    )
    snapshot = drift_reports.drift_report(
        inputs_ref, cur, settings, [*probas, PREDICTION], compared, calibrated
    )
    verdicts = calibrated_verdicts(drift_reports.verdicts(snapshot, numbers), calibrated)
    summary.data_drift = data_drift(verdicts, summary.data_quality, importance, settings)
    summary.data_drift.reference = "all" if len(inputs_ref) > len(ref) else "test"
    summary.data_drift.reference_rows = len(inputs_ref)
    summary.data_drift.alpha = settings.drift.alpha if calibrated.thresholds else None
    if settings.drift.multivariate.enabled:
        summary.multivariate = multivariate.judge(
            inputs_ref[features], cur[features], settings, cache
        )
    summary.prediction_drift = prediction_drift(verdicts, probas)
    summary._snapshots["report"] = snapshot


def _judge_performance(
    summary: Summary,
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    lab: pd.DataFrame,
    settings: Settings,
    classes: list[str],
) -> None:
    """The performance, concept-drift and label-drift sections, by the task's rules."""
    labeled_rows = summary.rows.labeled
    judged = labeled_rows >= settings.drift.min_labeled_rows
    if settings.data.is_regression:
        summary.performance, summary.concept_drift = regression.performance_and_concept(
            ref, cur, lab, reference_slices(ref, settings), settings, labeled_rows
        )
        if judged:
            summary.label_drift, summary._snapshots["performance"] = regression.label_drift(
                ref, lab, settings
            )
        return
    summary.performance, summary.concept_drift = performance_and_concept(
        ref, cur, lab, settings, classes, labeled_rows
    )
    if judged:
        summary.label_drift, summary._snapshots["performance"] = label_drift(
            ref, lab, settings, classes
        )
