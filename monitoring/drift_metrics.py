"""The drift job's verdicts as Prometheus series: pushed to a Pushgateway or written as a file.

The job is a batch job, so Prometheus cannot scrape it: it pushes to a Pushgateway (which
Prometheus scrapes with ``honor_labels``) or writes node_exporter's textfile format. Each
run builds a fresh registry and replaces the previous push as a whole, so a column or a
model version that is gone does not linger as a stale series. Kinds and columns without a
verdict (too few rows or labels) are left out rather than reported as "no drift".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from monitoring.drift_summary import Performance, Summary

JOB = "mlstack_drift"
MODEL_LABELS = ("model_name", "model_version")
DETECTED = "mlstack_drift_detected"
SHARE = "mlstack_drift_share"
COLUMN_SCORE = "mlstack_drift_column_score"
COLUMN_THRESHOLD = "mlstack_drift_column_threshold"
COLUMN_P_VALUE = "mlstack_drift_column_p_value"
COLUMN_DETECTED = "mlstack_drift_column_detected"
COLUMN_IMPORTANCE = "mlstack_drift_column_importance"
COLUMN_MISSING = "mlstack_drift_column_missing_share"
WEIGHTED_SHARE = "mlstack_drift_weighted_share"
MULTIVARIATE_AUC = "mlstack_drift_multivariate_auc"  # the domain classifier's, by kind
PERFORMANCE = "mlstack_performance"
PERFORMANCE_THRESHOLD = "mlstack_performance_lower_threshold"
LOSS_THRESHOLD = "mlstack_performance_upper_threshold"  # a regressor's loss: above is a drop
COVERAGE = "mlstack_drift_interval_coverage"  # a regressor's intervals: nominal and realized
ROWS = "mlstack_drift_rows"
LAST_SUCCESS = "mlstack_drift_last_success_timestamp_seconds"
SKIPPED_FILES = "mlstack_drift_skipped_files"  # capture files unreadable, quarantined
# Every series a run exports: the alert rules, the dashboard and the tests use these names.
SERIES = (
    DETECTED,
    SHARE,
    WEIGHTED_SHARE,
    MULTIVARIATE_AUC,
    COLUMN_SCORE,
    COLUMN_THRESHOLD,
    COLUMN_DETECTED,
    COLUMN_IMPORTANCE,
    COLUMN_MISSING,
    PERFORMANCE,
    PERFORMANCE_THRESHOLD,
    LOSS_THRESHOLD,
    COVERAGE,
    ROWS,
    LAST_SUCCESS,
    SKIPPED_FILES,
)
# Each task pushes only its own of these: a classifier's score has a lower bar, a
# regressor's loss an upper one and its intervals a coverage.
TASK_ONLY = {
    "classification": (PERFORMANCE_THRESHOLD,),
    "regression": (LOSS_THRESHOLD, COVERAGE),
}


def series_for(task: str) -> tuple[str, ...]:
    """The series a run of a model of ``task`` exports (when every verdict was reached)."""
    other = {name for t, names in TASK_ONLY.items() if t != task for name in names}
    return tuple(name for name in SERIES if name not in other)


def registry_for(
    summary: Summary, finished: float | None = None, skipped_files: int = 0
) -> CollectorRegistry:
    """Every series of one run in a registry of its own (with :data:`SKIPPED_FILES`)."""
    registry = CollectorRegistry()
    model = {"model_name": summary.model.name, "model_version": summary.model.version}

    def gauge(name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(name, documentation, [*labels, *MODEL_LABELS], registry=registry)

    detected = gauge(DETECTED, "1 when drift of this kind was detected.", "kind")
    share = gauge(SHARE, "Share of feature columns whose distribution drifted.")
    weighted_share = gauge(
        WEIGHTED_SHARE, "Share of the champion's feature importance carried by drifted columns."
    )
    performance = gauge(
        PERFORMANCE,
        "Model performance: reference, estimated (CBPE, no labels) or realized (labels).",
        "metric",
        "kind",
    )
    threshold = gauge(
        PERFORMANCE_THRESHOLD, "Below this the window's performance is a drop.", "metric"
    )
    rows = gauge(ROWS, "Rows compared, by kind.", "kind")
    success = gauge(LAST_SUCCESS, "When the drift job last completed.")

    for section, value in summary.verdicts().items():
        if value is not None:
            detected.labels(kind=section.kind, **model).set(int(value))
    if summary.data_drift.share is not None:
        share.labels(**model).set(summary.data_drift.share)
    if summary.data_drift.weighted_share is not None:
        weighted_share.labels(**model).set(summary.data_drift.weighted_share)
    _column_series(gauge, summary, model)
    _multivariate_series(gauge, summary, model)
    judged = summary.performance
    for kind in ("reference", "estimated", "realized"):
        measured = getattr(judged, kind)
        if measured is not None:
            performance.labels(metric=judged.metric, kind=kind, **model).set(measured)
    if judged.lower_threshold is not None:
        threshold.labels(metric=judged.metric, **model).set(judged.lower_threshold)
    _loss_series(gauge, judged, model)
    for kind, count in summary.rows.model_dump().items():
        rows.labels(kind=kind, **model).set(count)
    success.labels(**model).set(time.time() if finished is None else finished)
    gauge(SKIPPED_FILES, "Unreadable capture files quarantined.").labels(**model).set(skipped_files)
    return registry


def _column_series(gauge: Callable[..., Gauge], summary: Summary, model: dict[str, str]) -> None:
    """Per column (features, predictions): score, threshold, verdict, importance, missing
    share, and a calibrated column's p-value."""
    score = gauge(COLUMN_SCORE, "Drift score of a column (method dependent).", "column")
    threshold = gauge(
        COLUMN_THRESHOLD, "The score at which a column drifts (calibrated or fixed).", "column"
    )
    p_value = gauge(
        COLUMN_P_VALUE, "Chance of the score with no drift (calibrated columns).", "column"
    )
    column_detected = gauge(COLUMN_DETECTED, "1 when a column drifted.", "column")
    importance = gauge(
        COLUMN_IMPORTANCE, "A feature's normalised permutation importance.", "column"
    )
    missing = gauge(COLUMN_MISSING, "Share of current rows where a feature is missing.", "column")
    columns = {**summary.data_drift.columns, **summary.prediction_drift.columns}
    for column, verdict in columns.items():
        score.labels(column=column, **model).set(verdict.score)
        threshold.labels(column=column, **model).set(verdict.threshold)
        if verdict.p_value is not None:
            p_value.labels(column=column, **model).set(verdict.p_value)
        column_detected.labels(column=column, **model).set(int(verdict.detected))
        if verdict.importance is not None:
            importance.labels(column=column, **model).set(verdict.importance)
        if verdict.missing_share is not None:
            missing.labels(column=column, **model).set(verdict.missing_share)


def _multivariate_series(
    gauge: Callable[..., Gauge], summary: Summary, model: dict[str, str]
) -> None:
    """The domain classifier's AUC on the window (``kind="current"``), its threshold and
    its band's mean over reference stretches (``kind="threshold"``, ``"reference"``)."""
    judged = summary.multivariate
    if judged.detected is None:
        return
    auc = gauge(
        MULTIVARIATE_AUC,
        "Domain classifier ROC AUC telling current from reference rows: the window's "
        "(current), its threshold, and its band's mean over reference stretches (reference).",
        "kind",
    )
    figures = {
        "current": judged.score,
        "threshold": judged.threshold,
        "reference": judged.band_mean,
    }
    for kind, value in figures.items():
        if value is not None:
            auc.labels(kind=kind, **model).set(value)


def _loss_series(gauge: Callable[..., Gauge], judged: Performance, model: dict[str, str]) -> None:
    """A regressor's: the loss's upper threshold, and its intervals' coverage."""
    if judged.upper_threshold is not None:
        gauge(LOSS_THRESHOLD, "Above this the window's loss is a drop.", "metric").labels(
            metric=judged.metric, **model
        ).set(judged.upper_threshold)
    if judged.coverage is not None:
        covered = gauge(COVERAGE, "Share of labeled rows inside their interval.", "kind")
        covered.labels(kind="nominal", **model).set(judged.coverage.nominal)
        if judged.coverage.realized is not None:
            covered.labels(kind="realized", **model).set(judged.coverage.realized)


def push(
    summary: Summary, gateway: str, finished: float | None = None, skipped_files: int = 0
) -> None:
    """Replace the job's group on the Pushgateway with this run's series."""
    registry = registry_for(summary, finished, skipped_files)
    push_to_gateway(gateway, job=JOB, registry=registry, timeout=10)


def write_textfile(
    summary: Summary, path: Path, finished: float | None = None, skipped_files: int = 0
) -> None:
    """node_exporter textfile format; written to a temporary file then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry_for(summary, finished, skipped_files))
